//! From the raw Lambda event to the answer, without ever aborting the process.
//!
//! `lambda_http` turns an event into an `http::Request` with `expect`s: a body flagged
//! base64 that is not, a raw query string with a byte that no URI may hold (a space,
//! `"`, `<`, `>`, DEL), a `Host` that no URL may hold (`a b`, `[::1`, `h:99999`) each
//! panic, and release builds abort on panic, taking every request in flight with them.
//! So each event is checked first, along the very steps `lambda_http` takes, and an
//! event it could not convert gets a 400 here instead. Checking was chosen over
//! catching the panic: `catch_unwind` needs `panic = "unwind"` in release builds, which
//! costs binary size on every cold start and still leaves the 400 to build by hand; a
//! check answers the client properly and the fuzz target (`fuzz/`) keeps it complete.
//! The query maps are checked on the raw JSON: `query_map` panics iterating a key
//! whose list of values is empty (`"multiValueQueryStringParameters": {"a": []}`),
//! which lambda_http does for every REST and ALB event; found by `make fuzz`, as was
//! an ALB query whose rebuilt URI passes the `http` crate's 64 KiB limit.
//! Events that are not HTTP events at all get the invocation error.
//!
//! The raw event is also the only layer that sees every copy of a header: lambda_http
//! merges a REST or ALB event's single-value `headers` into `multiValueHeaders` (the
//! single value replacing the list), so a forged second `Authorization` vanishes
//! before the handler looks. `check_headers` counts the copies here (`RawParts`).

use std::convert::Infallible;

use base64::Engine;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::http::{HeaderMap, Response, Uri, header};
use lambda_http::lambda_runtime::LambdaEvent;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, Request, Service, TransformResponse, service_fn};
use serde_json::value::RawValue;

use super::Api;

/// Why an event cannot become an HTTP request. For the logs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadEvent {
    #[error("body flagged base64 is not base64")]
    Base64Body,
    #[error("host, path or query string do not make a URI")]
    Uri,
    #[error("a query parameter without a string value")]
    Query,
    #[error("query or header maps of an unexpected shape")]
    Shape,
    /// More than one `Authorization` (answered 401, as any unusable token).
    #[error("more than one Authorization header")]
    RepeatedAuthorization,
    #[error("more than one {0} header")]
    Repeated(&'static str),
}

impl BadEvent {
    /// The answer: a second `Authorization` is an authentication failure, anything
    /// else an unreadable request.
    pub fn error(self) -> super::ApiError {
        match self {
            Self::RepeatedAuthorization => super::ApiError::Unauthorized,
            _ => super::ApiError::InvalidRequest,
        }
    }
}

/// Why an event gets no HTTP answer at all (Lambda reports an invocation error).
#[derive(Debug, thiserror::Error)]
#[error("not an HTTP event this function serves")]
pub struct NotHttp(#[source] serde_json::Error);

/// The invocation error Lambda records: a fixed text, never the event.
impl From<NotHttp> for lambda_http::lambda_runtime::Diagnostic {
    fn from(_: NotHttp) -> Self {
        Self {
            error_type: "NotHttpEvent".into(),
            error_message: "the event is not an API Gateway, function URL or ALB request".into(),
        }
    }
}

/// Answers one raw event: a request when it converts, else a 400; an event of no
/// HTTP shape is an invocation error.
///
/// The event arrives as raw JSON text: it is parsed once into lambda_http's request
/// type and scanned once more for the two query maps only, rather than built into a
/// `serde_json::Value` of the whole event and converted from that.
pub async fn answer(
    api: &Api,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<impl serde::Serialize + use<>, NotHttp> {
    let LambdaEvent { payload, context } = event;
    // Never the event itself: it holds the token and the body.
    tracing::trace!(request_id = %context.request_id, "event received");
    let raw = payload.get();
    let request: LambdaRequest = serde_json::from_str(raw).map_err(NotHttp)?;
    let origin = request.request_origin();
    let checked = RawParts::read(raw).and_then(|parts| {
        // Authentication first, as in the handler: a repeated Authorization is a 401
        // whatever else is wrong with the event.
        let headers = parts.check_headers()?;
        parts.check_query_maps()?;
        check(&request)?;
        Ok(headers)
    });
    let answer: TransformResponse<'_, Response<Body>, Infallible> = match checked {
        Err(bad) => {
            let refused = api.refuse_event(bad, &context.request_id);
            TransformResponse::Request(origin, Box::pin(async move { Ok(refused) }))
        }
        Ok(headers) => {
            let handler = service_fn(move |mut request: Request| async move {
                if headers.caller_id_repeated {
                    // Which copy is the caller's id? Neither: the gateway's is answered.
                    request.headers_mut().remove("x-request-id");
                }
                Ok::<_, Infallible>(api.handle(request).await)
            });
            Adapter::from(handler).call(LambdaEvent::new(request, context))
        }
    };
    let Ok(answer) = answer.await;
    Ok(answer)
}

/// What is read of the raw event besides lambda_http's parse: the two query maps,
/// whatever their shape, and every copy of the headers in `GUARDED`; every other
/// field is skipped unread.
#[derive(serde::Deserialize)]
struct RawParts {
    #[serde(rename = "queryStringParameters", default)]
    single_query: Option<serde_json::Value>,
    #[serde(rename = "multiValueQueryStringParameters", default)]
    multi_query: Option<serde_json::Value>,
    #[serde(default)]
    headers: Copies,
    #[serde(rename = "multiValueHeaders", default)]
    multi_headers: Copies,
}

/// Headers whose meaning changes with a second copy, and what a second copy gets.
/// `X-Request-Id` only names the request in the answer and the logs: a repeated one
/// is ignored (the gateway's id is answered), not refused.
const GUARDED: [(&str, Option<BadEvent>); 4] = [
    ("authorization", Some(BadEvent::RepeatedAuthorization)),
    ("content-type", Some(BadEvent::Repeated("Content-Type"))),
    (
        "content-encoding",
        Some(BadEvent::Repeated("Content-Encoding")),
    ),
    ("x-request-id", None),
];

/// The copies of each `GUARDED` header in one header map (`headers` or
/// `multiValueHeaders`), in any letter case, one entry per JSON value: a list
/// contributes each element, a repeated JSON key each occurrence.
#[derive(Default)]
struct Copies([Vec<Option<String>>; GUARDED.len()]);

impl<'de> serde::Deserialize<'de> for Copies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CopiesVisitor)
    }
}

struct CopiesVisitor;

impl<'de> serde::de::Visitor<'de> for CopiesVisitor {
    type Value = Copies;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a header map")
    }

    fn visit_none<E>(self) -> Result<Copies, E> {
        Ok(Copies::default())
    }

    fn visit_unit<E>(self) -> Result<Copies, E> {
        Ok(Copies::default())
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Copies, D::Error> {
        d.deserialize_any(self)
    }

    // Not a map: a field lambda_http ignores for this shape (an HTTP API event's
    // `multiValueHeaders`), or it would not have parsed the event. No copies there.
    fn visit_bool<E>(self, _: bool) -> Result<Copies, E> {
        Ok(Copies::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Copies, E> {
        Ok(Copies::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Copies, E> {
        Ok(Copies::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Copies, E> {
        Ok(Copies::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Copies, E> {
        Ok(Copies::default())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Copies, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Copies::default())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Copies, A::Error> {
        use serde_json::Value;
        let mut copies = Copies::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(at) = GUARDED
                .iter()
                .position(|(guarded, _)| name.eq_ignore_ascii_case(guarded))
            else {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            };
            // A value that is not a string still counts as a copy.
            let text = |value: Value| value.as_str().map(str::to_owned);
            match map.next_value::<Value>()? {
                Value::Null => {}
                Value::Array(values) => copies.0[at].extend(values.into_iter().map(text)),
                value => copies.0[at].push(text(value)),
            }
        }
        Ok(copies)
    }
}

/// What the header check leaves for the handler to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderVerdict {
    /// `X-Request-Id` came more than once: the handler drops it.
    caller_id_repeated: bool,
}

impl RawParts {
    fn read(event: &str) -> Result<Self, BadEvent> {
        // lambda_http parsed this text already, so it is one JSON object; a header map
        // of a shape lambda_http accepts but this reader does not is refused.
        serde_json::from_str(event).map_err(|_| BadEvent::Shape)
    }

    /// Every value of the query maps (REST and ALB events: single and multi-valued)
    /// is a string or a non-empty list of strings.
    fn check_query_maps(&self) -> Result<(), BadEvent> {
        use serde_json::Value;
        for map in [&self.single_query, &self.multi_query] {
            let Some(Value::Object(map)) = map else {
                continue;
            };
            let valid = map.values().all(|value| match value {
                Value::String(_) => true,
                Value::Array(values) => !values.is_empty() && values.iter().all(Value::is_string),
                _ => false,
            });
            if !valid {
                return Err(BadEvent::Query);
            }
        }
        Ok(())
    }

    /// Each `GUARDED` header came at most once. API Gateway (REST) and ALB put the
    /// last copy in `headers` and all of them in `multiValueHeaders`, so one copy is
    /// one value in either map or the same value in both; HTTP APIs and function URLs
    /// join copies with a comma, which no value of these headers the function accepts
    /// holds, so a comma counts as a second copy in every shape.
    fn check_headers(&self) -> Result<HeaderVerdict, BadEvent> {
        let mut verdict = HeaderVerdict {
            caller_id_repeated: false,
        };
        for (at, (_, refusal)) in GUARDED.iter().enumerate() {
            let single = &self.headers.0[at];
            let multi = &self.multi_headers.0[at];
            let joined = single
                .iter()
                .chain(multi)
                .any(|value| value.as_deref().is_none_or(|v| v.contains(',')));
            let repeated = joined
                || single.len() > 1
                || multi.len() > 1
                || (single.len() == 1 && multi.len() == 1 && single[0] != multi[0]);
            match refusal {
                Some(refusal) if repeated => return Err(*refusal),
                Some(_) => {}
                None => verdict.caller_id_repeated = repeated,
            }
        }
        Ok(verdict)
    }
}

/// Whether `lambda_http` can convert `event` without panicking: the same steps, each
/// fallible here.
pub fn check(event: &LambdaRequest) -> Result<(), BadEvent> {
    match event {
        LambdaRequest::ApiGatewayV1(ag) => {
            check_body(ag.is_base64_encoded, ag.body.as_deref())?;
            let host = host(&ag.headers).or(ag.request_context.domain_name.as_deref());
            let path = with_stage(ag.request_context.stage.as_deref(), ag.path.as_deref());
            let query = query_string(
                &ag.multi_value_query_string_parameters,
                &ag.query_string_parameters,
            );
            check_uri(&path, &ag.headers, host, query.as_deref())
        }
        LambdaRequest::ApiGatewayV2(ag) => {
            check_body(ag.is_base64_encoded, ag.body.as_deref())?;
            let host = host(&ag.headers).or(ag.request_context.domain_name.as_deref());
            let path = with_stage(ag.request_context.stage.as_deref(), ag.raw_path.as_deref());
            let query = ag.raw_query_string.as_deref().filter(|q| !q.is_empty());
            check_uri(&path, &ag.headers, host, query)
        }
        LambdaRequest::Alb(alb) => {
            check_body(alb.is_base64_encoded, alb.body.as_deref())?;
            // lambda_http decodes the ALB's query maps and encodes them again: the
            // result is URI-safe, but it still counts towards the URI's length.
            let query = query_string(
                &alb_decoded(&alb.multi_value_query_string_parameters),
                &alb_decoded(&alb.query_string_parameters),
            );
            check_uri(
                alb.path.as_deref().unwrap_or_default(),
                &alb.headers,
                host(&alb.headers),
                query.as_deref(),
            )
        }
        // Origins this build does not enable never deserialize.
        #[allow(unreachable_patterns)]
        _ => Ok(()),
    }
}

fn check_body(is_base64: bool, body: Option<&str>) -> Result<(), BadEvent> {
    match body {
        Some(body) if is_base64 => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(drop)
            .map_err(|_| BadEvent::Base64Body),
        _ => Ok(()),
    }
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
}

/// The path as `lambda_http` builds it: the stage in front, unless the path already
/// starts with it, the stage is `$default`, or the environment says to leave it out.
fn with_stage(stage: Option<&str>, path: Option<&str>) -> String {
    let path = path.unwrap_or_default();
    match stage {
        _ if std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_some() => path.into(),
        None | Some("$default") => path.into(),
        Some(stage) if path.starts_with(&format!("/{stage}/")) => path.into(),
        Some(stage) => format!("/{stage}{path}"),
    }
}

/// An ALB query map as lambda_http rebuilds it: encoded, percent-decoded, parsed.
fn alb_decoded(map: &QueryMap) -> QueryMap {
    let encoded = map.to_query_string();
    let decoded = percent_encoding::percent_decode(encoded.as_bytes()).decode_utf8_lossy();
    decoded.parse().unwrap_or_default()
}

fn query_string(multi: &QueryMap, single: &QueryMap) -> Option<String> {
    [multi, single]
        .into_iter()
        .find(|q| !q.is_empty())
        .map(|q| q.to_query_string())
}

/// The URI `lambda_http` builds: a URL from scheme, host and path (or a bare path
/// without a host), then the query string, and it must parse as an `http::Uri`.
fn check_uri(
    path: &str,
    headers: &HeaderMap,
    host: Option<&str>,
    query: Option<&str>,
) -> Result<(), BadEvent> {
    let mut uri = match host {
        None => url::Url::parse(&format!("http://localhost{path}"))
            .map_err(|_| BadEvent::Uri)?
            .path()
            .to_owned(),
        Some(host) => {
            let scheme = headers
                .get("x-forwarded-proto")
                .and_then(|s| s.to_str().ok())
                .unwrap_or("https");
            url::Url::parse(&format!("{scheme}://{host}{path}"))
                .map_err(|_| BadEvent::Uri)?
                .to_string()
        }
    };
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(query);
    }
    Uri::try_from(uri).map(drop).map_err(|_| BadEvent::Uri)
}

#[cfg(test)]
mod tests {
    //! The crafted events of `events/crafted/` (each one aborted the release binary
    //! before this module existed) and the real fixtures of `events/`.
    use super::*;
    use lambda_http::Context;
    use std::path::Path;

    fn fixtures(dir: &str) -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut all: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        all.sort();
        assert!(!all.is_empty(), "no fixtures in {dir:?}");
        all
    }

    /// The fuzz targets' endpoint: in-memory stores, the dev secret's key.
    fn api() -> Api {
        crate::fuzzing::api()
    }

    async fn answer_to(json: &str) -> serde_json::Value {
        let payload = RawValue::from_string(json.to_owned()).unwrap();
        let response = answer(&api(), LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        serde_json::to_value(response).unwrap()
    }

    #[test]
    fn every_crafted_event_panics_in_lambda_http_unchecked() {
        // The negative control: without the check, each of these would abort.
        for (name, json) in fixtures("events/crafted") {
            let payload: LambdaRequest = serde_json::from_str(&json).unwrap();
            let converted = std::panic::catch_unwind(|| Request::from(payload));
            assert!(converted.is_err(), "{name} converts without panicking");
        }
    }

    #[tokio::test]
    async fn an_event_of_no_http_shape_is_an_invocation_error() {
        let records = RawValue::from_string(r#"{"Records": []}"#.to_owned()).unwrap();
        let event = LambdaEvent::new(records, Context::default());
        assert!(answer(&api(), event).await.is_err());
    }

    #[tokio::test]
    async fn every_crafted_event_is_answered_400_with_the_usual_headers() {
        for (name, json) in fixtures("events/crafted") {
            // GIVEN an event lambda_http cannot convert WHEN it arrives
            let answer = answer_to(&json).await;
            // THEN a 400 in the origin's shape, the JSON error, the seed's headers
            assert_eq!(answer["statusCode"], 400, "{name}: {answer}");
            let body: serde_json::Value =
                serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["error"], "invalid_request", "{name}");
            let headers = if answer["headers"].as_object().is_some_and(|h| !h.is_empty()) {
                &answer["headers"]
            } else {
                &answer["multiValueHeaders"]
            };
            assert!(
                headers.get("x-content-type-options").is_some(),
                "{name}: {headers}"
            );
            assert!(headers.get("x-token").is_none(), "{name}");
        }
    }

    #[tokio::test]
    async fn a_repeated_header_is_refused_before_any_store_and_one_copy_is_served() {
        for (name, json) in fixtures("events/crafted/repeated") {
            // GIVEN an event repeating Authorization, Content-Type or Content-Encoding
            // in one of the shapes the function accepts (or a control with one copy)
            let (api, catalog, objects) = crate::fuzzing::api_and_stores();
            let payload = RawValue::from_string(json.clone()).unwrap();
            // WHEN it arrives as the binary receives it
            let answer = answer(&api, LambdaEvent::new(payload, Context::default()))
                .await
                .unwrap();
            let answer = serde_json::to_value(answer).unwrap();
            let headers = if answer["headers"].as_object().is_some_and(|h| !h.is_empty()) {
                &answer["headers"]
            } else {
                &answer["multiValueHeaders"]
            };
            let header = |name: &str| match &headers[name] {
                serde_json::Value::Array(values) => values[0].clone(),
                value => value.clone(),
            };
            let store_calls = catalog.calls() + objects.calls();
            // THEN a repeat is refused with the usual answer and no store call; one
            // copy reaches the stores and deletes
            let status = &answer["statusCode"];
            match name.split('-').next().unwrap() {
                "401" => {
                    assert_eq!(status, 401, "{name}: {answer}");
                    assert_eq!(header("x-message"), "Access denied", "{name}");
                    assert!(header("x-token").is_null(), "{name}");
                }
                "400" => {
                    assert_eq!(status, 400, "{name}: {answer}");
                    let body: serde_json::Value =
                        serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
                    assert_eq!(body["error"], "invalid_request", "{name}");
                }
                "ok" => {
                    assert_eq!(status, 200, "{name}: {answer}");
                    assert!(store_calls > 0, "{name}");
                    continue;
                }
                other => panic!("{name}: no expected answer {other:?}"),
            }
            assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
            assert_eq!(store_calls, 0, "{name}");
        }
    }

    #[tokio::test]
    async fn a_repeated_request_id_is_not_answered() {
        // GIVEN a REST event whose caller sent X-Request-Id twice
        let json = include_str!("../../events/crafted/repeated/ok-v1-request-id-twice.json");
        let gateway = "3cdcadc9-532d-4f5e-8826-8584694cf195";
        assert!(json.contains(gateway));
        // WHEN it is answered
        let answer = answer_to(json).await;
        // THEN the gateway's id is answered, neither of the caller's
        assert_eq!(answer["statusCode"], 200, "{answer}");
        assert_eq!(answer["multiValueHeaders"]["x-request-id"][0], gateway);
    }

    #[test]
    fn one_copy_in_both_maps_is_one_and_a_comma_is_two() {
        let verdict = |json: &str| RawParts::read(json).and_then(|p| p.check_headers());
        let one = HeaderVerdict {
            caller_id_repeated: false,
        };
        assert_eq!(
            verdict(
                r#"{"headers": {"Authorization": "t"}, "multiValueHeaders": {"authorization": ["t"]}}"#
            ),
            Ok(one)
        );
        assert_eq!(
            verdict(r#"{"headers": null, "multiValueHeaders": null}"#),
            Ok(one)
        );
        assert_eq!(verdict(r#"{"headers": {"authorization": null}}"#), Ok(one));
        assert_eq!(
            verdict(r#"{"headers": {"authorization": "t"}, "multiValueHeaders": 7}"#),
            Ok(one)
        );
        for repeated in [
            r#"{"headers": {"authorization": "t", "authorization": "t"}}"#,
            r#"{"headers": {"authorization": "a,b"}}"#,
            r#"{"headers": {"authorization": 1}}"#,
            r#"{"multiValueHeaders": {"authorization": ["t", null]}}"#,
            r#"{"headers": {"authorization": "t"}, "multiValueHeaders": {"authorization": ["u"]}}"#,
        ] {
            assert_eq!(
                verdict(repeated),
                Err(BadEvent::RepeatedAuthorization),
                "{repeated}"
            );
        }
        assert_eq!(
            verdict(r#"{"headers": {"x-request-id": "a", "X-Request-Id": "a"}}"#),
            Ok(HeaderVerdict {
                caller_id_repeated: true
            })
        );
    }

    #[tokio::test]
    async fn the_real_fixtures_pass_the_check_and_reach_the_endpoint() {
        for (name, json) in fixtures("events") {
            let payload: LambdaRequest = serde_json::from_str(&json).unwrap();
            assert_eq!(check(&payload), Ok(()), "{name}");
            let answer = answer_to(&json).await;
            assert_ne!(answer["statusCode"], 400, "{name}: {answer}");
        }
    }
}
