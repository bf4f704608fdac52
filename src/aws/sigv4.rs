//! SigV4 for this function's own requests, with the day's signing key cached and every
//! hash computed by ring.
//!
//! The SDK's signer derives the signing key again for every call (four HMACs) and
//! hashes with the portable `sha2` crate: 31 % of a warm 9-id request's instructions
//! (callgrind). The signing key only changes with the date, region, service and secret,
//! so it is derived once a day here, and ring's SHA-256 does the rest.
//!
//! Only requests of the plain shape this function sends take the fast path: headers
//! signed in place, a body in memory, a path of unreserved characters, a query of
//! unreserved characters, single-valued headers with no spaces to trim, clock-skew
//! correction off. Anything else (presigning, streaming bodies, a session-token name
//! override, an unusual path or header) is handed to the SDK's own `SigV4Signer`, so
//! every request is signed exactly as the SDK would sign it. Tests compare the two byte
//! for byte, on the SDK's own requests and on generated ones.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_runtime::auth::sigv4::{SCHEME_ID, SigV4Signer};
use aws_runtime::auth::{
    HttpSignatureType, PayloadSigningOverride, SigV4OperationSigningConfig,
    SigV4SessionTokenNameOverride,
};
use aws_runtime::service_clock_skew::DisableClockSkewCorrection;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, RuntimeComponents};
use aws_smithy_runtime_api::client::auth::{
    AuthScheme, AuthSchemeEndpointConfig, AuthSchemeId, Sign,
};
use aws_smithy_runtime_api::client::identity::{Identity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::GetIdentityResolver;
use aws_smithy_types::Document;
use aws_types::SigningName;
use aws_types::region::SigningRegion;
use http::HeaderValue;
use ring::hmac;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Never signed: the SDK's signer leaves these out (`SigningSettings::default`).
const EXCLUDED_HEADERS: [&str; 4] = [
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];

/// The `sigv4` auth scheme with the caching signer; replaces the SDK's on a client
/// (`config::Builder::push_auth_scheme`), which must also disable clock-skew
/// correction for the fast path to apply.
#[derive(Debug, Default, Clone)]
pub struct CachedSigV4 {
    signer: Arc<CachedSigV4Signer>,
}

impl CachedSigV4 {
    /// How many requests this scheme signed itself rather than through the SDK's signer.
    pub fn fast_signs(&self) -> u64 {
        self.signer.fast_signs.load(Ordering::Relaxed)
    }
}

impl AuthScheme for CachedSigV4 {
    fn scheme_id(&self) -> AuthSchemeId {
        SCHEME_ID
    }

    fn identity_resolver(
        &self,
        identity_resolvers: &dyn GetIdentityResolver,
    ) -> Option<SharedIdentityResolver> {
        identity_resolvers.identity_resolver(self.scheme_id())
    }

    fn signer(&self) -> &dyn Sign {
        self.signer.as_ref()
    }
}

/// Signs the fast path itself, everything else through the SDK's signer.
#[derive(Debug, Default)]
pub struct CachedSigV4Signer {
    fallback: SigV4Signer,
    key: Mutex<Option<DayKey>>,
    fast_signs: AtomicU64,
}

/// One day's signing key and what it was derived from.
struct DayKey {
    secret: String,
    date: [u8; 8],
    region: String,
    service: String,
    key: hmac::Key,
}

impl std::fmt::Debug for DayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DayKey(..)")
    }
}

impl Sign for CachedSigV4Signer {
    fn sign_http_request(
        &self,
        request: &mut HttpRequest,
        identity: &Identity,
        auth_scheme_endpoint_config: AuthSchemeEndpointConfig<'_>,
        runtime_components: &RuntimeComponents,
        config_bag: &ConfigBag,
    ) -> Result<(), BoxError> {
        let plan = plan(request, identity, &auth_scheme_endpoint_config, config_bag);
        let Some(plan) = plan else {
            return self.fallback.sign_http_request(
                request,
                identity,
                auth_scheme_endpoint_config,
                runtime_components,
                config_bag,
            );
        };
        let now = runtime_components.time_source().unwrap_or_default().now();
        let signed = self.sign(&plan, now);
        self.fast_signs.fetch_add(1, Ordering::Relaxed);
        // The headers as the SDK's signer adds them: in this order, replacing.
        let mut added = vec![
            ("x-amz-date", HeaderValue::from_str(&signed.date_time)?),
            (
                "authorization",
                HeaderValue::from_str(&signed.authorization)?,
            ),
        ];
        if plan.content_sha256_header {
            added.push((
                "x-amz-content-sha256",
                HeaderValue::from_str(&plan.payload_hash)?,
            ));
        }
        if let Some(token) = plan.credentials.session_token() {
            let mut value = HeaderValue::from_str(token)?;
            value.set_sensitive(true);
            added.push(("x-amz-security-token", value));
        }
        drop(plan);
        let headers = request.headers_mut();
        for (name, value) in added {
            headers.insert(name, value);
        }
        Ok(())
    }
}

/// What the fast path signs: everything about the request that goes into the
/// signature, already checked to be of the plain shape.
struct Plan<'a> {
    credentials: &'a Credentials,
    region: Cow<'a, str>,
    service: Cow<'a, str>,
    method: &'a str,
    path: &'a str,
    /// (key, value) pairs, sorted (`key` alone has the empty value).
    query: Vec<(&'a str, &'a str)>,
    /// Lowercase names and values, sorted, host and the `x-amz-*` headers signing adds
    /// included (the date and payload hash written at signing time).
    headers: Vec<(&'a str, Cow<'a, str>)>,
    payload_hash: Cow<'a, str>,
    content_sha256_header: bool,
}

struct Signed {
    date_time: String,
    authorization: String,
}

/// The fast path's plan for this request, or None when the SDK's signer must sign it.
fn plan<'a>(
    request: &'a HttpRequest,
    identity: &'a Identity,
    endpoint_config: &AuthSchemeEndpointConfig<'a>,
    cfg: &'a ConfigBag,
) -> Option<Plan<'a>> {
    let credentials = identity.data::<Credentials>()?;
    let operation = cfg.load::<SigV4OperationSigningConfig>()?;
    let options = &operation.signing_options;
    let plain = options.signature_type == HttpSignatureType::HttpRequestHeaders
        && options.expires_in.is_none()
        && options.payload_override.is_none()
        && !options.omit_session_token
        && cfg
            .load::<DisableClockSkewCorrection>()
            .is_some_and(|d| d.is_disabled());
    if !plain {
        return None;
    }
    // S3 registers an override for S3 Express buckets; it names no other header for
    // the others, which is what the SDK's signer asks it with these settings.
    if let Some(token_name) = cfg.load::<SigV4SessionTokenNameOverride>() {
        let settings = aws_sigv4::http_request::SigningSettings::default();
        if !matches!(token_name.name_override(&settings, cfg), Ok(None)) {
            return None;
        }
    }
    let region = match endpoint_config.get("signingRegion") {
        Some(Document::String(region)) => Cow::Borrowed(region.as_str()),
        Some(_) => return None,
        None => cfg
            .load::<SigningRegion>()
            .map(|r| r.as_ref())
            .or(operation.region.as_ref().map(|r| r.as_ref()))
            .map(Cow::Borrowed)?,
    };
    let service = match endpoint_config.get("signingName") {
        Some(Document::String(name)) => Cow::Borrowed(name.as_str()),
        Some(_) => return None,
        None => cfg
            .load::<SigningName>()
            .map(|n| n.as_ref())
            .or(operation.name.as_ref().map(|n| n.as_ref()))
            .map(Cow::Borrowed)?,
    };
    let payload_hash = match cfg.load::<PayloadSigningOverride>() {
        Some(PayloadSigningOverride::Precomputed(hash)) => Cow::Borrowed(hash.as_str()),
        Some(_) => return None,
        None => Cow::Owned(sha256_hex(request.body().bytes()?)),
    };
    let uri: &http::Uri = &request.uri().parse().ok()?;
    // A plain path is its own normalised, (double) encoded form.
    let path = request.uri().split(['?', '#']).next()?;
    let path = path
        .strip_prefix(uri.scheme_str()?)?
        .strip_prefix("://")?
        .strip_prefix(uri.authority()?.as_str())?;
    if path != uri.path() || !plain_path(path) {
        return None;
    }
    let query = match request.uri().split_once('?') {
        None => Vec::new(),
        Some((_, q)) if q.contains('#') => return None,
        Some((_, q)) => plain_query(q)?,
    };
    // The default port is left out, as hyper leaves it out of the `Host` it sends.
    let host = match (uri.scheme_str(), uri.port_u16()) {
        (Some("http"), Some(80)) | (Some("https"), Some(443)) | (_, None) => uri.host()?,
        _ => uri.authority()?.as_str(),
    }
    .to_owned();
    let mut headers: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(request.headers().len() + 4);
    for (name, value) in request.headers().iter() {
        if !plain_header(name, value) {
            return None;
        }
        if !EXCLUDED_HEADERS.contains(&name) {
            headers.push((name, Cow::Borrowed(value)));
        }
    }
    // Set by signing, replacing any value the request had.
    let token = credentials.session_token();
    headers.retain(|(name, _)| {
        !(*name == "x-amz-date"
            || (*name == "x-amz-security-token" && token.is_some())
            || (*name == "x-amz-content-sha256" && options.content_sha256_header))
    });
    if !headers.iter().any(|(name, _)| *name == "host") {
        headers.push(("host", Cow::Owned(host)));
    }
    if let Some(token) = token {
        headers.push(("x-amz-security-token", Cow::Borrowed(token)));
    }
    // Written at signing time: the date, and the payload hash the plan owns.
    headers.push(("x-amz-date", Cow::Borrowed("")));
    if options.content_sha256_header {
        headers.push(("x-amz-content-sha256", Cow::Borrowed("")));
    }
    headers.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if headers.windows(2).any(|w| w[0].0 == w[1].0) {
        return None; // a repeated header: its values are joined, the SDK does that
    }
    Some(Plan {
        credentials,
        region,
        service,
        method: request.method(),
        path,
        query,
        headers,
        payload_hash,
        content_sha256_header: options.content_sha256_header,
    })
}

/// RFC 3986's unreserved characters: SigV4 encodes everything else.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `/` or `/seg/seg`, maybe with a trailing `/`, of unreserved, non-dot segments:
/// nothing to normalise or encode.
fn plain_path(path: &str) -> bool {
    path == "/"
        || path.strip_prefix('/').is_some_and(|rest| {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment.bytes().all(unreserved)
            })
        })
}

/// The query's (key, value) pairs (`key` alone has the empty value), sorted, when
/// every key and value is unreserved (their encoded form is themselves).
fn plain_query(query: &str) -> Option<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.is_empty() || !key.bytes().chain(value.bytes()).all(unreserved) {
            return None;
        }
        pairs.push((key, value));
    }
    // SigV4 sorts the encoded pairs; unreserved text is its own encoding.
    pairs.sort_unstable();
    Some(pairs)
}

/// A header value with no spaces to trim or collapse, in visible ASCII.
fn plain_header(name: &str, value: &str) -> bool {
    !name.bytes().any(|b| b.is_ascii_uppercase())
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.contains("  ")
        && value.bytes().all(|b| (b' '..=b'~').contains(&b))
}

impl CachedSigV4Signer {
    fn sign(&self, plan: &Plan<'_>, now: SystemTime) -> Signed {
        let date_time = format_date_time(now);
        let date = &date_time[..8];
        let mut creq = String::with_capacity(512);
        creq.push_str(plan.method);
        creq.push('\n');
        creq.push_str(plan.path);
        creq.push('\n');
        for (i, (key, value)) in plan.query.iter().enumerate() {
            if i > 0 {
                creq.push('&');
            }
            creq.push_str(key);
            creq.push('=');
            creq.push_str(value);
        }
        creq.push('\n');
        for (name, value) in &plan.headers {
            creq.push_str(name);
            creq.push(':');
            creq.push_str(match *name {
                "x-amz-date" => &date_time,
                "x-amz-content-sha256" if plan.content_sha256_header => &plan.payload_hash,
                _ => value,
            });
            creq.push('\n');
        }
        creq.push('\n');
        let signed_start = creq.len();
        for (i, (name, _)) in plan.headers.iter().enumerate() {
            if i > 0 {
                creq.push(';');
            }
            creq.push_str(name);
        }
        let signed_headers = creq[signed_start..].to_owned();
        creq.push('\n');
        creq.push_str(&plan.payload_hash);

        let scope = format!("{date}/{}/{}/aws4_request", plan.region, plan.service);
        let string_to_sign = format!(
            "{ALGORITHM}\n{date_time}\n{scope}\n{}",
            sha256_hex(creq.as_bytes())
        );
        let signature = hmac::sign(&self.day_key(plan, date), string_to_sign.as_bytes());
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={}",
            plan.credentials.access_key_id(),
            hex(signature.as_ref()),
        );
        Signed {
            date_time,
            authorization,
        }
    }

    /// The signing key for this date, region, service and secret: derived at most once
    /// a day per client.
    fn day_key(&self, plan: &Plan<'_>, date: &str) -> hmac::Key {
        let secret = plan.credentials.secret_access_key();
        let mut cached = self.key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(day) = cached.as_ref()
            && day.date == date.as_bytes()
            && day.secret == secret
            && day.region == plan.region
            && day.service == plan.service
        {
            return day.key.clone();
        }
        let key = derive_signing_key(secret, date, &plan.region, &plan.service);
        let mut day_date = [0u8; 8];
        day_date.copy_from_slice(&date.as_bytes()[..8]);
        *cached = Some(DayKey {
            secret: secret.to_owned(),
            date: day_date,
            region: plan.region.clone().into_owned(),
            service: plan.service.clone().into_owned(),
            key: key.clone(),
        });
        key
    }
}

/// SigV4's key derivation: HMAC("AWS4" + secret, date), then region, service,
/// "aws4_request".
fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes()),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            part.as_bytes(),
        );
    }
    hmac::Key::new(hmac::HMAC_SHA256, key.as_ref())
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn format_date_time(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The lowercase hex SHA-256 of `bytes` (ring's: its assembly, not `sha2`'s portable code).
fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_runtime::auth::SigningOptions;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Layer, Region};
    use aws_smithy_async::time::StaticTimeSource;
    use aws_smithy_http_client::test_util::capture_request;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_types::body::SdkBody;
    use proptest::prelude::*;
    use std::time::Duration;

    use crate::store::test_calls;

    /// Everything of a request that goes on the wire.
    type Wire = (String, String, Vec<(String, String)>, Vec<u8>);

    /// The request as sent, but for the per-call random id (added after signing).
    fn wire(request: &HttpRequest) -> Wire {
        (
            request.method().to_owned(),
            request.uri().to_owned(),
            request
                .headers()
                .iter()
                .map(|(n, v)| match n {
                    "amz-sdk-invocation-id" => (n.to_owned(), "random".to_owned()),
                    _ => (n.to_owned(), v.to_owned()),
                })
                .collect(),
            request.body().bytes().unwrap_or_default().to_vec(),
        )
    }

    fn credentials(token: bool) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.then(|| "FwoGZXIvYXdzEJr//////////token".to_owned()),
            None,
            "test",
        )
    }

    /// The DynamoDB and S3 calls the function makes, through clients signing with
    /// `scheme` (None: the SDK's own), as they go on the wire.
    async fn sdk_requests(
        scheme: Option<CachedSigV4>,
        endpoint: Option<&str>,
        path_style: bool,
        at: SystemTime,
    ) -> Vec<Wire> {
        let dynamodb_with = |http| {
            let mut config = aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(credentials(true))
                .time_source(StaticTimeSource::new(at))
                .http_client(http)
                .disable_clock_skew_correction(true);
            if let Some(url) = endpoint {
                config = config.endpoint_url(url);
            }
            if let Some(scheme) = &scheme {
                config = config.push_auth_scheme(scheme.clone());
            }
            aws_sdk_dynamodb::Client::from_conf(config.build())
        };
        let mut s3 = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(credentials(true))
            .time_source(StaticTimeSource::new(at))
            .force_path_style(path_style)
            .disable_clock_skew_correction(true);
        if let Some(url) = endpoint {
            s3 = s3.endpoint_url(url);
        }
        if let Some(scheme) = &scheme {
            s3 = s3.push_auth_scheme(scheme.clone());
        }
        let mut out = Vec::new();
        let (http, captured) = capture_request(None);
        let _ = dynamodb_with(http)
            .batch_get_item()
            .request_items("images", test_calls::reads())
            .send()
            .await;
        out.push(wire(&captured.expect_request()));
        let (http, captured) = capture_request(None);
        let _ = dynamodb_with(http)
            .batch_write_item()
            .request_items("images", test_calls::writes())
            .send()
            .await;
        out.push(wire(&captured.expect_request()));
        // Keys that need encoding in the XML body.
        let delete = test_calls::object_deletes(|i| format!("albums/a b&<{i}>/original.jpg"));
        let (http, captured) = capture_request(None);
        let s3 = aws_sdk_s3::Client::from_conf(s3.http_client(http).build());
        let _ = s3
            .delete_objects()
            .bucket("images-bucket")
            .delete(delete)
            .send()
            .await;
        out.push(wire(&captured.expect_request()));
        out
    }

    #[tokio::test]
    async fn the_functions_calls_are_signed_byte_for_byte_as_by_the_sdk() {
        let endpoints = [
            None,
            Some("http://127.0.0.1:18000"),
            Some("https://localhost:8443"),
            Some("https://example.com:443"),
        ];
        // Across midnight, so the cached day key must be replaced.
        let times = [1_796_083_199, 1_796_083_200, 1_796_083_201]
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        for endpoint in endpoints {
            for path_style in [false, true] {
                // GIVEN one caching scheme kept across calls and days
                let scheme = CachedSigV4::default();
                for at in times {
                    // WHEN the function's three calls are signed by it and by the SDK
                    let sdk = sdk_requests(None, endpoint, path_style, at).await;
                    let ours = sdk_requests(Some(scheme.clone()), endpoint, path_style, at).await;
                    // THEN every byte on the wire is the same
                    assert!(
                        sdk.iter()
                            .all(|w| w.2.iter().any(|(n, v)| n == "authorization"
                                && v.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")))
                    );
                    assert_eq!(ours, sdk, "{endpoint:?} path style {path_style}");
                }
                // AND the caching signer signed every one of them itself
                assert_eq!(
                    scheme.fast_signs(),
                    9,
                    "{endpoint:?} path style {path_style}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_wrong_day_key_would_be_seen() {
        // GIVEN a caching scheme whose cached key for today was derived for yesterday
        // (the negative control: the comparison above sees a wrong signature)
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let scheme = CachedSigV4::default();
        let secret = credentials(true).secret_access_key().to_owned();
        let today = format_date_time(at);
        *scheme.signer.key.lock().unwrap() = Some(DayKey {
            key: derive_signing_key(&secret, "20261128", "eu-west-1", "dynamodb"),
            secret,
            date: today.as_bytes()[..8].try_into().unwrap(),
            region: "eu-west-1".into(),
            service: "dynamodb".into(),
        });
        // WHEN a DynamoDB call is signed with it and by the SDK
        let ours = sdk_requests(Some(scheme.clone()), None, false, at).await;
        let sdk = sdk_requests(None, None, false, at).await;
        // THEN the DynamoDB calls differ in their signature, and only there
        let authorization = |w: &Wire| {
            let (_, v) = w.2.iter().find(|(n, _)| n == "authorization").unwrap();
            v.split_once("Signature=").unwrap().0.to_owned()
        };
        assert_ne!(ours[0], sdk[0]);
        assert_eq!(authorization(&ours[0]), authorization(&sdk[0]));
        assert_eq!(ours[2], sdk[2], "S3's key is derived apart");
    }

    /// Signs `request` with the SDK's signer and with ours, as a client would.
    fn sign_both(
        request: &HttpRequest,
        token: bool,
        options: SigningOptions,
        endpoint: Option<&Document>,
        precomputed: Option<String>,
        at: SystemTime,
        ours: &CachedSigV4Signer,
    ) -> (Result<Wire, String>, Result<Wire, String>) {
        let identity = Identity::new(credentials(token), None);
        let components = RuntimeComponentsBuilder::for_tests()
            .with_time_source(Some(StaticTimeSource::new(at)))
            .build()
            .unwrap();
        let mut layer = Layer::new("test");
        let operation = SigV4OperationSigningConfig {
            region: Some(SigningRegion::from_static("eu-west-1")),
            name: Some(SigningName::from_static("dynamodb")),
            signing_options: options,
            ..Default::default()
        };
        layer.store_put(operation);
        layer.store_put(DisableClockSkewCorrection::from(true));
        if let Some(hash) = precomputed {
            layer.store_put(PayloadSigningOverride::Precomputed(hash));
        }
        let bag = ConfigBag::of_layers(vec![layer]);
        let sign = |signer: &dyn Sign| {
            let mut request = request.try_clone().unwrap();
            signer
                .sign_http_request(
                    &mut request,
                    &identity,
                    AuthSchemeEndpointConfig::from(endpoint),
                    &components,
                    &bag,
                )
                .map(|()| wire(&request))
                .map_err(|e| e.to_string())
        };
        (sign(&SigV4Signer::new()), sign(ours))
    }

    fn request(method: &str, uri: &str, headers: &[(String, String)], body: &[u8]) -> HttpRequest {
        let mut request = HttpRequest::new(SdkBody::from(body.to_vec()));
        request.set_method(method).unwrap();
        request.set_uri(uri).unwrap();
        for (name, value) in headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        request
    }

    fn options(content_sha256: bool, double: bool, normalize: bool) -> SigningOptions {
        let mut options = SigningOptions::default();
        options.content_sha256_header = content_sha256;
        options.double_uri_encode = double;
        options.normalize_uri_path = normalize;
        options
    }

    #[test]
    fn a_plain_request_takes_the_fast_path_and_an_odd_one_the_sdks() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let ours = CachedSigV4Signer::default();
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        // GIVEN a plain request, WHEN signed, THEN by the fast path, as the SDK signs it
        let plain = request(
            "POST",
            "https://dynamodb.eu-west-1.amazonaws.com/",
            &headers,
            b"{}",
        );
        let (sdk, fast) = sign_both(
            &plain,
            true,
            options(false, true, true),
            None,
            None,
            at,
            &ours,
        );
        assert_eq!(fast, sdk);
        assert_eq!(ours.fast_signs.load(Ordering::Relaxed), 1);
        // GIVEN requests the fast path leaves to the SDK: an encoded path, a dot
        // segment, a space to trim, a repeated header, an encoded query
        let spaced = [("x-amz-meta".to_owned(), "a  b".to_owned())];
        let twice = [
            ("x-amz-meta".to_owned(), "a".to_owned()),
            ("x-amz-meta".to_owned(), "b".to_owned()),
        ];
        for (uri, headers) in [
            ("https://h.example/a%20b", &headers[..]),
            ("https://h.example/a/./b", &headers[..]),
            ("https://h.example/", &spaced[..]),
            ("https://h.example/", &twice[..]),
            ("https://h.example/?a=b%2Fc", &headers[..]),
        ] {
            let odd = request("GET", uri, headers, b"");
            let (sdk, ours_) =
                sign_both(&odd, true, options(true, true, true), None, None, at, &ours);
            // THEN still signed exactly as the SDK signs, by the SDK's signer
            assert_eq!(ours_, sdk, "{uri}");
        }
        assert_eq!(ours.fast_signs.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn dates_are_formatted_as_sigv4_writes_them() {
        let at = |s: u64| format_date_time(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_796_083_199), "20261130T235959Z");
        assert_eq!(at(4_107_542_400), "21000301T000000Z");
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9._~-]{1,8}",
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just(String::new()),
            "[a-zA-Z0-9%20+!*]{1,6}",
        ]
    }

    fn query_pair() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{1,6}",
            "[a-z0-9-]{1,6}=[a-zA-Z0-9._~-]{0,6}",
            "[a-z]{1,3}=[a-z0-9%/+ =]{0,6}",
        ]
    }

    fn header() -> impl Strategy<Value = (String, String)> {
        (
            prop_oneof![
                Just("content-type".to_owned()),
                Just("x-amz-target".to_owned()),
                Just("x-amz-date".to_owned()),
                Just("x-amz-security-token".to_owned()),
                Just("x-amz-content-sha256".to_owned()),
                Just("host".to_owned()),
                Just("user-agent".to_owned()),
                Just("authorization".to_owned()),
                Just("content-length".to_owned()),
                "x-[a-z]{1,6}",
            ],
            "[ -~]{0,12}",
        )
    }

    #[test]
    fn generated_requests_are_signed_byte_for_byte_as_by_the_sdk() {
        use proptest::test_runner::{Config, TestRunner};
        let requests = (
            prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
            prop_oneof![
                Just("https://dynamodb.eu-west-1.amazonaws.com"),
                Just("http://127.0.0.1:8000"),
                Just("https://b.s3.amazonaws.com:443"),
                Just("http://h.example:80"),
            ],
            (proptest::collection::vec(segment(), 0..4), any::<bool>()),
            proptest::collection::vec(query_pair(), 0..4),
            proptest::collection::vec(header(), 0..5),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            prop_oneof![Just(None), Just(Some(("us-east-1", "s3")))],
            0u64..4_000_000_000,
        );
        let signed = AtomicU64::new(0);
        let ours = CachedSigV4Signer::default();
        let mut runner = TestRunner::new(Config::with_cases(1024));
        let outcome = runner.run(&requests, |case| {
            let (
                method,
                host,
                (path, trailing),
                query,
                headers,
                body,
                token,
                flags,
                endpoint,
                seconds,
            ) = case;
            let mut uri = format!("{host}/{}", path.join("/"));
            if trailing && !path.is_empty() {
                uri.push('/');
            }
            if !query.is_empty() {
                uri = format!("{uri}?{}", query.join("&"));
            }
            let mut built = HttpRequest::new(SdkBody::from(body.clone()));
            built.set_method(method).unwrap();
            if built.set_uri(uri.as_str()).is_err() {
                return Ok(()); // not a URI the SDK could send
            }
            for (name, value) in &headers {
                built.headers_mut().append(name.clone(), value.clone());
            }
            let (content_sha256, double, normalize, precompute) = flags;
            let document = endpoint.map(|(region, name)| {
                Document::Object(std::collections::HashMap::from([
                    (
                        "signingRegion".to_owned(),
                        Document::String(region.to_owned()),
                    ),
                    ("signingName".to_owned(), Document::String(name.to_owned())),
                ]))
            });
            let precomputed = precompute.then(|| sha256_hex(&body));
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
            // One signer throughout: its cached key must follow date, region, service.
            let (sdk, fast) = sign_both(
                &built,
                token,
                options(content_sha256, double, normalize),
                document.as_ref(),
                precomputed,
                at,
                &ours,
            );
            signed.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(fast, sdk);
            Ok(())
        });
        outcome.unwrap();
        // The generated requests exercise both paths.
        let fast = ours.fast_signs.load(Ordering::Relaxed);
        let all = signed.load(Ordering::Relaxed);
        assert!(
            fast * 5 > all && fast * 10 < all * 9,
            "{fast} fast of {all}"
        );
    }
}
