//! Typed configuration, read once at init: a missing or invalid setting fails the
//! cold start with a clear message instead of the first request.

use secrecy::SecretString;

use crate::domain::trash::TrashDays;

/// Where the token signing keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// `JWT_SECRET`: one key, for local use.
    Env(SecretString),
    /// `JWT_SECRET_ARN`: an AWS Secrets Manager secret holding one or more keys.
    SecretArn(String),
}

#[derive(Debug)]
pub struct Config {
    /// `IMAGES_TABLE`
    pub table: String,
    /// `IMAGES_BUCKET`
    pub bucket: String,
    /// Token keys; only the HTTP entry point needs them (checked when it is built).
    pub keys: Option<KeySource>,
    /// `MAX_IDS`: distinct ids accepted per request.
    pub max_ids: usize,
    /// `DELETE_ABILITIES`: any one of these, granted for an image's album, allows its deletion.
    pub delete_abilities: Vec<String>,
    /// `TOKEN_TTL_SECONDS`: lifetime of the token minted into `X-token`.
    pub token_ttl_seconds: i64,
    /// How long renewals may go on after a token chain's original issue time.
    pub token_max_lifetime_seconds: i64,
    /// When set, tokens must carry exactly this `iss` (`JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// When set, tokens' `aud` must hold this (`JWT_AUDIENCE`).
    pub jwt_audience: Option<String>,
    /// `AWS_CONCURRENCY`: AWS calls in flight at once for one step of a request.
    pub concurrency: usize,
    /// `ALBUM_INDEX`: the table's global secondary index on `album_id`.
    pub album_index: String,
    /// `ALBUM_PAGE_SIZE`: images deleted per page of an album cleanup.
    pub album_page_size: usize,
    /// `ALBUM_PREFETCH` (`true` unless `false`): read an album's next page while the
    /// current one is deleted (`false`: one after the other, as before).
    pub album_prefetch: bool,
    /// `CLEANUP_QUEUE_URL`: where unfinished album cleanups are handed on.
    pub cleanup_queue_url: Option<String>,
    /// Set when any AWS endpoint is overridden: the function runs locally, against
    /// emulators (the only place the documented dev secret is accepted).
    pub local: bool,
    /// Set when `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` points at an emulator,
    /// which wants path-style S3 addressing.
    pub s3_path_style: bool,
    /// `PRECONNECT` (`false` unless `true`): open and TLS-handshake one connection
    /// each to DynamoDB and S3 during init, so the first request does not pay for
    /// them; worth it where init runs ahead of requests (provisioned concurrency).
    pub preconnect: bool,
    /// `TRASH_DAYS` (0 or unset: deletion is final) with `TRASH_TABLE` (required
    /// then) and `TRASH_INDEX`: see `docs/trash.md`.
    pub trash: Option<TrashSettings>,
}

/// Where trashed images go and how long they stay.
#[derive(Debug)]
pub struct TrashSettings {
    pub days: TrashDays,
    pub table: String,
    /// The trash table's index on `album_id` + `listed_at`.
    pub index: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// The signing key the README documents for local runs (it signs the tokens in
/// `events/`): anyone can mint tokens with it, so a deployed function refuses it.
pub const DEV_SECRET: &str = "dev-secret-for-local-runs-only-0123456789abcdef";

/// The endpoint overrides the SDK reads (the standard `AWS_ENDPOINT_URL[_SERVICE]`
/// variables of every client this crate builds).
const ENDPOINT_VARIABLES: [&str; 6] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
];

/// The audit trigger's one setting: the bus its events go to (`AUDIT_BUS`, a name or
/// an ARN), after the same endpoint checks as `Config`.
pub fn audit_bus(get: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    for name in ENDPOINT_VARIABLES {
        if let Some(url) = get(name) {
            check_endpoint(name, &url)?;
        }
    }
    get("AUDIT_BUS").ok_or(ConfigError::Missing("AUDIT_BUS"))
}

/// An endpoint override is `https://`, or plain `http://` to this machine only (a
/// local emulator): signed requests and the answers trusted for deletes never cross
/// a network in clear text.
fn check_endpoint(name: &'static str, url: &str) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        name,
        why: why.to_owned(),
    };
    let parsed = url::Url::parse(url).map_err(|_| invalid("is not a URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(invalid(
                    "uses plain http to a host that is not this machine (127.0.0.1, ::1, localhost): use https",
                ))
            }
        }
        _ => Err(invalid("is neither https:// nor http:// to this machine")),
    }
}

impl Config {
    pub const DEFAULT_MAX_IDS: usize = 1000;
    pub const DEFAULT_DELETE_ABILITIES: &'static str = "image_delete,image_list";
    /// Four hours, as in the seed (`exp - iat` = 14400).
    pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 14_400;
    /// 40 = the `BatchWriteItem` calls of a 1000-id request (25 records each), so each
    /// step of a full request is one wave of round trips.
    pub const DEFAULT_CONCURRENCY: usize = 40;
    /// One page is what one request may hold: the core deletes it in concurrent
    /// chunks (10 `BatchGetItem`, 1-2 `DeleteObjects`, 40 `BatchWriteItem` calls).
    pub const DEFAULT_ALBUM_PAGE_SIZE: usize = 1000;

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let keys = match (get("JWT_SECRET_ARN"), get("JWT_SECRET")) {
            (Some(arn), _) => Some(KeySource::SecretArn(arn)),
            (None, Some(secret)) => Some(KeySource::Env(SecretString::from(secret))),
            (None, None) => None,
        };
        let delete_abilities: Vec<String> = get("DELETE_ABILITIES")
            .unwrap_or_else(|| Self::DEFAULT_DELETE_ABILITIES.to_owned())
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if delete_abilities.is_empty() {
            return Err(ConfigError::Invalid {
                name: "DELETE_ABILITIES",
                why: "lists no ability".into(),
            });
        }
        for name in ENDPOINT_VARIABLES {
            if let Some(url) = get(name) {
                check_endpoint(name, &url)?;
            }
        }
        let days =
            TrashDays::parse(get("TRASH_DAYS").as_deref().unwrap_or("0")).map_err(|err| {
                ConfigError::Invalid {
                    name: "TRASH_DAYS",
                    why: err.to_string(),
                }
            })?;
        let trash = match days {
            None => None,
            Some(days) => Some(TrashSettings {
                days,
                table: required("TRASH_TABLE")?,
                index: get("TRASH_INDEX").unwrap_or_else(|| {
                    crate::store::dynamodb::trash::DEFAULT_TRASH_INDEX.to_owned()
                }),
            }),
        };
        Ok(Self {
            trash,
            table: required("IMAGES_TABLE")?,
            bucket: required("IMAGES_BUCKET")?,
            keys,
            max_ids: number(&get, "MAX_IDS", Self::DEFAULT_MAX_IDS, 1..=10_000)?,
            delete_abilities,
            token_ttl_seconds: number(
                &get,
                "TOKEN_TTL_SECONDS",
                Self::DEFAULT_TOKEN_TTL_SECONDS,
                60..=7 * 24 * 3600,
            )?,
            token_max_lifetime_seconds: number(
                &get,
                "TOKEN_MAX_LIFETIME_SECONDS",
                crate::auth::DEFAULT_MAX_LIFETIME_SECONDS,
                60..=30 * 24 * 3600,
            )?,
            jwt_issuer: get("JWT_ISSUER"),
            jwt_audience: get("JWT_AUDIENCE"),
            concurrency: number(&get, "AWS_CONCURRENCY", Self::DEFAULT_CONCURRENCY, 1..=256)?,
            album_index: get("ALBUM_INDEX").unwrap_or_else(|| "album_id-index".to_owned()),
            album_page_size: number(
                &get,
                "ALBUM_PAGE_SIZE",
                Self::DEFAULT_ALBUM_PAGE_SIZE,
                1..=1000,
            )?,
            album_prefetch: flag(&get, "ALBUM_PREFETCH", true)?,
            cleanup_queue_url: get("CLEANUP_QUEUE_URL"),
            local: [
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_DYNAMODB",
                "AWS_ENDPOINT_URL_S3",
            ]
            .iter()
            .any(|name| get(name).is_some()),
            s3_path_style: get("AWS_ENDPOINT_URL_S3").is_some()
                || get("AWS_ENDPOINT_URL").is_some(),
            preconnect: flag(&get, "PRECONNECT", false)?,
        })
    }
}

/// A switch: `true` or `false`, `default` when unset.
fn flag(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).as_deref().map(str::trim) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name,
            why: "must be true or false".into(),
        }),
    }
}

fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let value: T = raw.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        why: "not a number".into(),
    })?;
    if !range.contains(&value) {
        return Err(ConfigError::Invalid {
            name,
            why: format!("must be between {} and {}", range.start(), range.end()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const BASE: &[(&str, &str)] = &[
        ("IMAGES_TABLE", "images"),
        ("IMAGES_BUCKET", "images"),
        ("JWT_SECRET", "s"),
    ];

    #[test]
    fn defaults_apply_when_only_the_required_settings_are_given() {
        let c = config(BASE).unwrap();
        assert_eq!(c.max_ids, 1000);
        assert_eq!(c.delete_abilities, ["image_delete", "image_list"]);
        assert_eq!(c.token_ttl_seconds, 14400);
        assert!(!c.s3_path_style);
        assert!(matches!(c.keys, Some(KeySource::Env(_))));
        assert_eq!(c.album_page_size, 1000);
        assert!(c.album_prefetch);
        assert!(!c.preconnect);
        assert!(c.cleanup_queue_url.is_none());
        assert!(c.trash.is_none());
    }

    #[test]
    fn a_trash_needs_its_table_and_days_in_range() {
        let c = config(&[BASE, &[("TRASH_DAYS", "30"), ("TRASH_TABLE", "t")]].concat()).unwrap();
        let trash = c.trash.unwrap();
        assert_eq!((trash.days.get(), trash.table.as_str()), (30, "t"));
        assert_eq!(trash.index, "album_id-listed_at-index");
        assert!(
            config(&[BASE, &[("TRASH_DAYS", "0")]].concat())
                .unwrap()
                .trash
                .is_none()
        );
        let err = config(&[BASE, &[("TRASH_DAYS", "30")]].concat()).unwrap_err();
        assert_eq!(err.to_string(), "TRASH_TABLE must be set");
        let err = config(&[BASE, &[("TRASH_DAYS", "-1"), ("TRASH_TABLE", "t")]].concat());
        assert!(
            err.unwrap_err()
                .to_string()
                .starts_with("TRASH_DAYS is invalid")
        );
    }

    #[test]
    fn missing_or_invalid_settings_fail_with_their_name() {
        let err = config(&BASE[1..]).unwrap_err().to_string();
        assert_eq!(err, "IMAGES_TABLE must be set");
        let err = config(&[BASE, &[("MAX_IDS", "lots")]].concat())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "MAX_IDS is invalid: not a number");
        let err = config(&[BASE, &[("MAX_IDS", "0")]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("MAX_IDS is invalid"), "{err}");
        assert!(config(&[BASE, &[("DELETE_ABILITIES", " , ")]].concat()).is_err());
        assert!(config(&BASE[..2]).unwrap().keys.is_none());
    }

    #[test]
    fn plain_http_endpoints_are_refused_unless_they_are_this_machine() {
        let with = |name: &str, url: &str| {
            let vars: HashMap<&str, &str> =
                [("IMAGES_TABLE", "t"), ("IMAGES_BUCKET", "b"), (name, url)].into();
            Config::from_lookup(|n| vars.get(n).map(|v| v.to_string()))
        };
        for (name, url) in [
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("AWS_ENDPOINT_URL_S3", "http://localhost:5000"),
            ("AWS_ENDPOINT_URL", "http://[::1]:4566"),
            (
                "AWS_ENDPOINT_URL_SQS",
                "https://sqs.eu-west-1.amazonaws.com",
            ),
            ("AWS_ENDPOINT_URL_DYNAMODB", "https://10.0.0.5:8000"),
        ] {
            assert!(with(name, url).is_ok(), "{name}={url}");
        }
        for (name, url) in [
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://10.0.0.5:8000"),
            ("AWS_ENDPOINT_URL_S3", "http://s3.amazonaws.com"),
            ("AWS_ENDPOINT_URL", "http://localhost.example.com"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "ftp://127.0.0.1"),
            ("AWS_ENDPOINT_URL_SQS", "not a url"),
        ] {
            let err = with(name, url).expect_err(url).to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn a_secret_arn_wins_and_an_endpoint_override_means_path_style() {
        let c = config(
            &[
                BASE,
                &[
                    ("JWT_SECRET_ARN", "arn:x"),
                    ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000"),
                ],
            ]
            .concat(),
        )
        .unwrap();
        assert!(matches!(c.keys, Some(KeySource::SecretArn(ref a)) if a == "arn:x"));
        assert!(c.s3_path_style);
    }
}
