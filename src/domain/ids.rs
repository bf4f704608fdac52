//! Identifiers the service accepts, parsed once at the edge so that the rest of the
//! code can never see a malformed, non-canonical or duplicated id.

use foldhash::{HashSet, HashSetExt};
use std::fmt;

/// An image id: a UUID, held as its lowercase hyphenated text, inline (36 bytes, cloned
/// without allocating): a 1000-id request makes no allocation per id, and every use (a
/// DynamoDB key, the JSON answer, a log field) wants the text, not the 128-bit value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId([u8; uuid::fmt::Hyphenated::LENGTH]);

/// Why a string is not an [`ImageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID in canonical form (8-4-4-4-12 hexadecimal digits)")]
pub struct InvalidImageId;

impl ImageId {
    /// Parses the hyphenated 36-character form, in any letter case.
    ///
    /// Braced, URN and unhyphenated forms are refused: they are not what the API's
    /// clients send, and accepting them would make two spellings of one id. Checked
    /// byte by byte (hyphens at 8, 13, 18 and 23, hex digits elsewhere) rather than
    /// through `uuid`'s parser and formatter (340 instructions an id): every id of a
    /// request and of each record read is parsed, on the critical path.
    pub fn parse(raw: &str) -> Result<Self, InvalidImageId> {
        let raw: &[u8; uuid::fmt::Hyphenated::LENGTH] =
            raw.as_bytes().try_into().map_err(|_| InvalidImageId)?;
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        for (at, (&byte, out)) in raw.iter().zip(text.iter_mut()).enumerate() {
            let hyphen = matches!(at, 8 | 13 | 18 | 23);
            *out = match byte {
                b'-' if hyphen => b'-',
                _ if !hyphen && byte.is_ascii_hexdigit() => byte.to_ascii_lowercase(),
                _ => return Err(InvalidImageId),
            };
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: the only constructor, `parse`, fills the bytes with ASCII
        // hexadecimal digits and hyphens only.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageId({})", self.as_str())
    }
}

impl serde::Serialize for ImageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An album id as it appears in records and token abilities. Opaque, non-empty.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct AlbumId(String);

/// Why a string is not an [`AlbumId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("album id must be 1 to {max} characters without control characters", max = AlbumId::MAX_LEN)]
pub struct InvalidAlbumId;

impl AlbumId {
    /// Bounded so that an album id cannot be used to blow up a key or a log line.
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, InvalidAlbumId> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || raw.chars().any(char::is_control) {
            return Err(InvalidAlbumId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key of one stored object (original or variant) of an image.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// S3 keys are 1 to 1024 bytes of UTF-8.
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.len() <= Self::MAX_LEN).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A deduplicated, bounded list of image ids, in the order they were first given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageIds(Vec<ImageId>);

/// Why a list of ids was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidImageIds {
    #[error("image id #{position} is not a UUID")]
    Malformed { position: usize },
    #[error("too many image ids: at most {max} per request")]
    TooMany { max: usize },
}

impl ImageIds {
    /// Parses raw ids in request order; the first occurrence of a duplicate wins.
    /// `max` bounds the number of distinct ids.
    pub fn parse<'a, I>(raw: I, max: usize) -> Result<Self, InvalidImageIds>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let raw = raw.into_iter();
        // Sized for the ids given (up to `max` distinct): growing a set of 1000 rehashes
        // it ten times.
        let expected = raw.size_hint().0.min(max.saturating_add(1));
        let mut seen = HashSet::with_capacity(expected);
        let mut ids = Vec::with_capacity(expected);
        for (index, raw) in raw.enumerate() {
            let id = ImageId::parse(raw.trim()).map_err(|_| InvalidImageIds::Malformed {
                position: index + 1,
            })?;
            if seen.insert(id.clone()) {
                if ids.len() == max {
                    return Err(InvalidImageIds::TooMany { max });
                }
                ids.push(id);
            }
        }
        Ok(Self(ids))
    }

    /// A list of one id.
    pub fn one(id: ImageId) -> Self {
        Self(vec![id])
    }

    /// Already-parsed ids (from a store), deduplicated; the caller bounds the count.
    pub fn from_ids(ids: impl IntoIterator<Item = ImageId>) -> Self {
        let mut seen = HashSet::new();
        Self(
            ids.into_iter()
                .filter(|id| seen.insert(id.clone()))
                .collect(),
        )
    }

    pub fn as_slice(&self) -> &[ImageId] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7dca41d5-d76a-4ebb-9e00-dd13c13fc238";

    #[test]
    fn image_id_accepts_canonical_uuids_in_any_case_and_lowercases_them() {
        // GIVEN an upper-case spelling of a valid id
        let upper = ID.to_ascii_uppercase();
        // WHEN it is parsed
        let id = ImageId::parse(&upper).unwrap();
        // THEN it is stored in canonical lowercase form
        assert_eq!(id.as_str(), ID);
    }

    #[test]
    fn image_id_rejects_every_non_canonical_form() {
        for bad in [
            "",
            "not-a-uuid",
            "7dca41d5d76a4ebb9e00dd13c13fc238",
            "{7dca41d5-d76a-4ebb-9e00-dd13c13fc238}",
            "urn:uuid:7dca41d5-d76a-4ebb-9e00-dd13c13fc238",
            "7dca41d5-d76a-4ebb-9e00-dd13c13fc23g",
            "7dca41d5-d76a-4ebb-9e00dd13c13fc2338",
            "7dca41d5-d76a-4ebb-9e00-dd13c13fc2é",
        ] {
            assert_eq!(ImageId::parse(bad), Err(InvalidImageId), "{bad:?}");
        }
    }

    /// The id rule, written out: 36 bytes, hyphens at 8, 13, 18 and 23, hexadecimal
    /// digits elsewhere.
    fn canonical_by_rule(raw: &str) -> bool {
        raw.len() == 36
            && raw.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    }

    proptest::proptest! {
        #[test]
        fn image_id_follows_the_rule_exactly(raw in "[0-9a-fA-FgG{}: +-]{30,40}") {
            // GIVEN any string near the canonical form (hex digits, hyphens, braces,
            // signs, spaces; 30 to 40 long) WHEN it is parsed
            let parsed = ImageId::parse(&raw);
            // THEN it is accepted exactly when the rule says so, as its lowercase text
            proptest::prop_assert_eq!(parsed.is_ok(), canonical_by_rule(&raw));
            if let Ok(id) = parsed {
                proptest::prop_assert_eq!(id.as_str(), raw.to_ascii_lowercase());
            }
        }

        #[test]
        fn image_id_accepts_every_uuid_in_any_case(bytes in proptest::array::uniform16(0u8..), upper in proptest::collection::vec(proptest::bool::ANY, 36)) {
            // GIVEN any 128-bit value, spelled hyphenated with a random mix of cases
            let lower = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
            let mixed: String = lower
                .chars()
                .zip(&upper)
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            // WHEN it is parsed THEN it is the lowercase spelling
            let id = ImageId::parse(&mixed);
            proptest::prop_assert_eq!(id.as_ref().map(ImageId::as_str), Ok(lower.as_str()));
        }
    }

    #[test]
    fn id_list_collapses_duplicates_keeping_first_order() {
        // GIVEN ids with a duplicate in another case
        let b = "dcd964c3-f54e-413c-ab2e-41c8608f5d16";
        let upper = ID.to_ascii_uppercase();
        // WHEN the list is parsed
        let ids = ImageIds::parse([ID, b, upper.as_str()], 10).unwrap();
        // THEN the duplicate is gone and the order is the request's
        let got: Vec<&str> = ids.as_slice().iter().map(ImageId::as_str).collect();
        assert_eq!(got, [ID, b]);
    }

    #[test]
    fn id_list_reports_the_position_of_a_malformed_id() {
        let err = ImageIds::parse([ID, "nope"], 10).unwrap_err();
        assert_eq!(err, InvalidImageIds::Malformed { position: 2 });
    }

    #[test]
    fn id_list_bounds_distinct_ids_not_duplicates() {
        // GIVEN a bound of one id
        // WHEN the same id is sent twice THEN it is accepted
        assert_eq!(ImageIds::parse([ID, ID], 1).unwrap().len(), 1);
        // WHEN two distinct ids are sent THEN the list is refused
        let err = ImageIds::parse([ID, "dcd964c3-f54e-413c-ab2e-41c8608f5d16"], 1).unwrap_err();
        assert_eq!(err, InvalidImageIds::TooMany { max: 1 });
    }

    #[test]
    fn album_and_object_key_bounds() {
        assert!(AlbumId::parse("00100000123BB121").is_ok());
        assert!(AlbumId::parse("").is_err());
        assert!(AlbumId::parse("a\nb").is_err());
        assert!(AlbumId::parse(&"a".repeat(257)).is_err());
        assert!(ObjectKey::parse("").is_none());
        assert!(ObjectKey::parse(&"k".repeat(1025)).is_none());
        assert!(ObjectKey::parse("albums/a/b.jpg").is_some());
    }
}
