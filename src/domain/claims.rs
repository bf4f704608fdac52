//! What a verified token says about its bearer: who they are and, per album, what they
//! may do. Built only from a token whose signature has been checked (see `auth`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::AlbumId;

/// The claims of an API token.
///
/// Field order is the seed's (`exp`, `iat`, `user_id`, `abilities`); claims this service
/// does not know are kept in `other` so that a re-minted token carries them unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, seconds since the epoch. Required, and must be a JSON integer.
    pub exp: i64,
    /// Issue time, seconds since the epoch, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// When the chain of renewals began (OIDC's `auth_time`), set by the first renewal
    /// and kept on every one after: renewals stop a fixed time after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Not before, seconds since the epoch, when present: enforced, and kept on renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub user_id: String,
    pub abilities: Abilities,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `{"<album_id>": {"Access": {"image_list": true, ...}}, ...}`.
///
/// Kept as the token spelled it, so that a re-minted token is byte-for-byte the same
/// document; only the shape is checked when the token is read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Abilities(Map<String, Value>);

impl<'de> Deserialize<'de> for Abilities {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        if let Some((album, _)) = map.iter().find(|(_, grants)| !grants.is_object()) {
            return Err(serde::de::Error::custom(format_args!(
                "abilities for album {album:?} must be an object"
            )));
        }
        Ok(Self(map))
    }
}

/// The key under an album's abilities that holds access grants.
const ACCESS: &str = "Access";

impl Abilities {
    /// Whether the token grants `ability` (exactly `true`) for `album`.
    pub fn grants(&self, album: &AlbumId, ability: &str) -> bool {
        self.0
            .get(album.as_str())
            .and_then(|grants| grants.get(ACCESS))
            .and_then(|access| access.get(ability))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Whether the token grants any of `abilities` on some album: a token that does
    /// not can delete nothing, whatever it asks for.
    pub fn grants_any_anywhere(&self, abilities: &[String]) -> bool {
        self.0.keys().any(|album| {
            AlbumId::parse(album).is_ok_and(|album| self.grants_any(&album, abilities))
        })
    }

    /// The albums on which the token grants `ability`, in name order.
    pub fn albums_granting(&self, ability: &str) -> Vec<AlbumId> {
        let mut albums: Vec<AlbumId> = self
            .0
            .keys()
            .filter_map(|album| AlbumId::parse(album).ok())
            .filter(|album| self.grants(album, ability))
            .collect();
        albums.sort();
        albums
    }

    /// Whether the token grants any of `abilities` for `album`.
    pub fn grants_any(&self, album: &AlbumId, abilities: &[String]) -> bool {
        abilities.iter().any(|ability| self.grants(album, ability))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    const SEED: &str = r#"{"exp":1554759531,"iat":1554745131,"user_id":"dc850635-9cda-4c7c-8102-bed25f39055e","abilities":{"00100000123BB121":{"Access":{"image_list":true}}}}"#;

    #[test]
    fn seed_claims_round_trip_unchanged() {
        // GIVEN the seed token's payload
        // WHEN it is read and written back
        let written = serde_json::to_string(&claims(SEED).unwrap()).unwrap();
        // THEN it is the same document, in the same order
        assert_eq!(written, SEED);
    }

    #[test]
    fn unknown_claims_are_kept() {
        let c = claims(r#"{"exp":1,"user_id":"u","abilities":{},"iss":"images","n":[1]}"#).unwrap();
        let written = serde_json::to_string(&c).unwrap();
        assert_eq!(
            written,
            r#"{"exp":1,"user_id":"u","abilities":{},"iss":"images","n":[1]}"#
        );
    }

    #[test]
    fn grants_only_exact_true_for_the_named_album() {
        let c = claims(SEED).unwrap();
        let album = AlbumId::parse("00100000123BB121").unwrap();
        let other = AlbumId::parse("00100000123BB122").unwrap();
        assert!(c.abilities.grants(&album, "image_list"));
        assert!(!c.abilities.grants(&album, "image_delete"));
        assert!(!c.abilities.grants(&other, "image_list"));
        let truthy = claims(
            r#"{"exp":1,"user_id":"u","abilities":{"a":{"Access":{"image_delete":"true"}}}}"#,
        )
        .unwrap();
        let a = AlbumId::parse("a").unwrap();
        assert!(!truthy.abilities.grants(&a, "image_delete"));
    }

    #[test]
    fn malformed_claims_are_refused() {
        for bad in [
            r#"{"exp":"1554759531","user_id":"u","abilities":{}}"#,
            r#"{"exp":1.5,"user_id":"u","abilities":{}}"#,
            r#"{"user_id":"u","abilities":{}}"#,
            r#"{"exp":1,"abilities":{}}"#,
            r#"{"exp":1,"user_id":"u"}"#,
            r#"{"exp":1,"user_id":"u","abilities":{"a":true}}"#,
            r#"{"exp":1,"user_id":"u","abilities":[]}"#,
            r#"{"exp":1,"iat":"0","user_id":"u","abilities":{}}"#,
        ] {
            assert!(claims(bad).is_err(), "{bad}");
        }
    }
}
