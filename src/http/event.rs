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
    let answer: TransformResponse<'_, Response<Body>, Infallible> =
        match check_query_maps(raw).and_then(|()| check(&request)) {
            Err(bad) => {
                let refused = api.refuse_event(bad, &context.request_id);
                TransformResponse::Request(origin, Box::pin(async move { Ok(refused) }))
            }
            Ok(()) => {
                let handler = service_fn(move |request: Request| async move {
                    Ok::<_, Infallible>(api.handle(request).await)
                });
                Adapter::from(handler).call(LambdaEvent::new(request, context))
            }
        };
    let Ok(answer) = answer.await;
    Ok(answer)
}

/// The event's two query maps, whatever their shape; every other field is skipped
/// unread.
#[derive(serde::Deserialize)]
struct QueryMaps {
    #[serde(rename = "queryStringParameters", default)]
    single: Option<serde_json::Value>,
    #[serde(rename = "multiValueQueryStringParameters", default)]
    multi: Option<serde_json::Value>,
}

/// Every value of the query maps (REST and ALB events: single and multi-valued) is
/// a string or a non-empty list of strings.
fn check_query_maps(event: &str) -> Result<(), BadEvent> {
    use serde_json::Value;
    // lambda_http parsed this text already, so it is one JSON object.
    let maps: QueryMaps = serde_json::from_str(event).map_err(|_| BadEvent::Query)?;
    for map in [maps.single, maps.multi] {
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
    async fn the_real_fixtures_pass_the_check_and_reach_the_endpoint() {
        for (name, json) in fixtures("events") {
            let payload: LambdaRequest = serde_json::from_str(&json).unwrap();
            assert_eq!(check(&payload), Ok(()), "{name}");
            let answer = answer_to(&json).await;
            assert_ne!(answer["statusCode"], 400, "{name}: {answer}");
        }
    }
}
