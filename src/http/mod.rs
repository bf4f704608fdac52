//! The HTTP entry point: `DELETE /api/v1/images` and `DELETE /api/v1/images/{id}`,
//! and with a trash its routes (`trash`), behind API Gateway (REST and HTTP APIs), a
//! function URL or an ALB.
//!
//! Order of work: route, authenticate, parse (all without AWS), then the deletion
//! core; every answer, errors included, leaves through `finish`.

pub mod error;
pub mod event;
pub mod input;
mod trash;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lambda_http::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};

use crate::auth::{TokenError, Tokens, token_from_header};
use crate::domain::trash::RequestId;
use crate::domain::{Authority, Claims, DeleteOutcome, Deleter, ImageId, ImageIds};
use crate::metrics::Metrics;
use crate::ports::StoreErrorKind;
use crate::retry::Deadline;
pub use error::ApiError;
use input::Route;

pub(crate) const JSON: &str = "application/json; charset=utf-8";
/// The `Trigger` dimension of this entry point's metrics.
const METRICS_TRIGGER: &str = "http";

/// The seed's headers, sent on every answer.
const STANDARD_HEADERS: &[(&str, &str)] = &[
    ("cache-control", "no-cache, no-store"),
    ("pragma", "no-cache"),
    ("expires", "Fri, 01 Jan 1990 00:00:00 GMT"),
    ("vary", "Accept-Encoding"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
    (
        "referrer-policy",
        "origin-when-cross-origin, strict-origin-when-cross-origin",
    ),
];

/// The endpoint, built once at init and shared by every invocation.
pub struct Api {
    deleter: Deleter,
    tokens: Tokens,
    max_ids: usize,
    delete_abilities: Vec<String>,
    /// The album ability that guards the trash's routes.
    trash_ability: String,
}

/// Attached to every answer's extensions (never sent): how many of the ids it did not
/// report may in fact be gone, because a write's answer was lost and the confirming
/// re-read failed too. For tests and wrappers that check answers against the stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unconfirmed(pub usize);

/// What one request did, for its log line and metrics.
#[derive(Default)]
struct Tally {
    requested: usize,
    missing: usize,
    failed: usize,
    /// Failed ids that may in fact be gone (a lost answer the re-read could not check).
    unconfirmed: usize,
    metrics: Metrics,
}

impl Api {
    pub fn new(
        deleter: Deleter,
        tokens: Tokens,
        max_ids: usize,
        delete_abilities: Vec<String>,
    ) -> Self {
        Self {
            deleter,
            tokens,
            max_ids,
            delete_abilities,
            trash_ability: crate::domain::restore::TRASH_ABILITY.to_owned(),
        }
    }

    /// Answers one request. Never fails: every error is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let ids = request_ids(&request);
        let mut tally = Tally::default();
        let response = match self.serve(&request, &ids.aws, &mut tally).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        let mut response = finish(response, &ids.answered, started);
        response
            .extensions_mut()
            .insert(Unconfirmed(tally.unconfirmed));
        if response.status() == StatusCode::UNAUTHORIZED {
            tally.metrics.denied_requests = 1;
        }
        tracing::info!(
            request_id = %ids.answered,
            aws_request_id = %ids.aws,
            status = response.status().as_u16(),
            requested = tally.requested,
            deleted = tally.metrics.images_deleted,
            missing = tally.missing,
            failed = tally.failed,
            unconfirmed = tally.unconfirmed,
            objects_deleted = tally.metrics.objects_deleted,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        tally.metrics.emit(METRICS_TRIGGER);
        response
    }

    /// Answers an event refused before it becomes a request (`event`): a 400, or a
    /// 401 for a repeated `Authorization`, with the usual headers, logged like any
    /// other answer.
    pub fn refuse_event(&self, reason: event::BadEvent, request_id: &str) -> Response<Body> {
        let started = Instant::now();
        let request_id = if request_id.is_empty() {
            format!("{:032x}", fastrand::u128(..))
        } else {
            request_id.to_owned()
        };
        let response = finish(reason.error().into_response(), &request_id, started);
        let status = response.status().as_u16();
        tracing::info!(request_id = %request_id, status, %reason, "refused event");
        let mut metrics = Metrics::default();
        if response.status() == StatusCode::UNAUTHORIZED {
            metrics.denied_requests = 1;
        }
        metrics.emit(METRICS_TRIGGER);
        response
    }

    async fn serve(
        &self,
        request: &Request,
        aws_request_id: &str,
        tally: &mut Tally,
    ) -> Result<Response<Body>, ApiError> {
        let route = input::route(request, stage(request), self.deleter.trashes())?;
        let claims = self.authenticate(request.headers(), aws_request_id)?;
        // A token that may do nothing here gets no work done on its behalf: no reads
        // to amplify, no renewal (docs/design.md, Security).
        let (needed, what) = if route.in_trash() {
            (std::slice::from_ref(&self.trash_ability), "trash")
        } else {
            (&self.delete_abilities[..], "delete")
        };
        if !claims.abilities.grants_any_anywhere(needed) {
            tracing::info!(aws_request_id, user_id = %claims.user_id, "token grants no {what} ability");
            return Err(ApiError::Unauthorized);
        }
        let mut response = if route.in_trash() {
            self.serve_trash(route, request, &claims, aws_request_id, tally)
                .await?
        } else {
            self.serve_delete(route, request, &claims, aws_request_id, tally)
                .await?
        };
        // Minted only once the answer is a success: failures carry no token; nor does
        // a success past the renewal cap (README, Tokens).
        if let Some(fresh) = self.tokens.renew(&claims, unix_now()) {
            let token = HeaderValue::from_str(&fresh).expect("a JWT is a valid header value");
            response.headers_mut().insert("x-token", token);
        }
        Ok(response)
    }

    async fn serve_delete(
        &self,
        route: Route<'_>,
        request: &Request,
        claims: &Claims,
        aws_request_id: &str,
        tally: &mut Tally,
    ) -> Result<Response<Body>, ApiError> {
        let ids = match route {
            Route::One(raw) => ImageIds::one(input::one_id(raw)?),
            _ => input::bulk_ids(request, self.max_ids)?,
        };
        tally.requested = ids.len();
        let authority = Authority::Token {
            user_id: &claims.user_id,
            abilities: &claims.abilities,
            required: &self.delete_abilities,
        };
        let outcome = match self
            .deleter
            .delete(
                &ids,
                authority,
                &RequestId::new(aws_request_id),
                deadline(request),
            )
            .await
        {
            Ok(outcome) => outcome,
            Err(denied) => {
                tracing::warn!(
                    aws_request_id,
                    denied = denied.ids.len(),
                    user_id = %claims.user_id,
                    "delete denied"
                );
                return Err(ApiError::Unauthorized);
            }
        };
        tally.missing = outcome.missing.len();
        tally.failed = outcome.failed.len();
        tally.unconfirmed = outcome.unconfirmed.len();
        tally.metrics.images_deleted = outcome.deleted.len() as u64;
        tally.metrics.objects_deleted = outcome.objects_deleted as u64;
        tally.metrics.unprocessed_retries = outcome.retries;
        tally.metrics.s3_key_errors = outcome.object_errors;
        match route {
            Route::One(_) => one_answer(outcome, aws_request_id),
            _ => bulk_answer(outcome, aws_request_id),
        }
    }

    fn authenticate(&self, headers: &HeaderMap, aws_request_id: &str) -> Result<Claims, ApiError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().map(HeaderValue::as_bytes);
        let single = values.next().is_none();
        let token = if single {
            token_from_header(value)
        } else {
            Err(TokenError::Ambiguous)
        };
        token
            .and_then(|token| self.tokens.verify(token, unix_now()))
            .map_err(|reason| {
                tracing::info!(aws_request_id, %reason, "unauthenticated");
                ApiError::Unauthorized
            })
    }
}

/// 200 with the deleted ids, newest-requested first (the seed's order); a 5xx only
/// when AWS failed and nothing at all was deleted.
fn bulk_answer(outcome: DeleteOutcome, aws_request_id: &str) -> Result<Response<Body>, ApiError> {
    if outcome.deleted.is_empty() {
        upstream_failure(&outcome, aws_request_id)?;
    } else if let Some(err) = &outcome.error {
        tracing::warn!(aws_request_id, error = %err, failed = outcome.failed.len(), "partial deletion");
    }
    let ids: Vec<&ImageId> = outcome.deleted.iter().rev().collect();
    let body = serde_json::to_string(&ids).expect("ids serialize");
    let mut response = Response::new(Body::Text(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    Ok(response)
}

/// 204 when deleted, 404 when there was nothing to delete.
fn one_answer(outcome: DeleteOutcome, aws_request_id: &str) -> Result<Response<Body>, ApiError> {
    upstream_failure(&outcome, aws_request_id)?;
    if outcome.deleted.is_empty() {
        return Ok(ApiError::ImageNotFound.into_response());
    }
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// Logs the cause chain of a failure (once) and turns it into the 5xx to answer.
fn upstream_failure(outcome: &DeleteOutcome, aws_request_id: &str) -> Result<(), ApiError> {
    let Some(err) = &outcome.error else {
        return Ok(());
    };
    tracing::error!(aws_request_id, error = %err.chain(), failed = outcome.failed.len(), "deletion failed");
    Err(match err.kind() {
        StoreErrorKind::Throttled => ApiError::Throttled,
        StoreErrorKind::Unavailable => ApiError::Unavailable,
        StoreErrorKind::Failed => ApiError::Internal,
    })
}

/// Adds the headers every answer carries.
fn finish(mut response: Response<Body>, request_id: &str, started: Instant) -> Response<Body> {
    let headers = response.headers_mut();
    for (name, value) in STANDARD_HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    let runtime = format!("{:.6}", started.elapsed().as_secs_f64());
    headers.insert(
        "x-runtime",
        HeaderValue::from_str(&runtime).expect("digits"),
    );
    response
}

/// The ids of one request: `answered` goes back in `X-Request-Id` (the caller's own
/// when it is a sane token, else `aws`); `aws` is the gateway's id, else the
/// invocation's, and is what AWS's own logs know the request by. Log lines carry both.
struct RequestIds {
    answered: String,
    aws: String,
}

fn request_ids(request: &Request) -> RequestIds {
    let gateway = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    let aws = gateway
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{:032x}", fastrand::u128(..)));
    let caller = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
    RequestIds {
        answered: caller.map_or_else(|| aws.clone(), str::to_owned),
        aws,
    }
}

fn stage(request: &Request) -> Option<&str> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    }
}

/// The invocation's deadline less the answer margin.
fn deadline(request: &Request) -> Deadline {
    Deadline::of_invocation(request.lambda_context_ref().map_or(0, |c| c.deadline))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! The endpoint over in-memory fakes (and one mocked DynamoDB client): statuses,
    //! and proof that refused requests never reach a store.
    use super::*;
    use crate::domain::{AlbumId, ImageRecord, ObjectKey};
    use crate::store::dynamodb::DynamoCatalog;
    use crate::store::memory::{MemoryCatalog, MemoryObjectStore};
    use lambda_http::http;
    use secrecy::SecretString;
    use std::sync::Arc;

    const KEY: &str = "unit-test-key-0123456789abcdef0123456789";
    const A: &str = "7dca41d5-d76a-4ebb-9e00-dd13c13fc238";
    const B: &str = "dcd964c3-f54e-413c-ab2e-41c8608f5d16";
    const FORM: &str = "application/x-www-form-urlencoded";

    struct Fixture {
        api: Api,
        catalog: Arc<MemoryCatalog>,
        objects: Arc<MemoryObjectStore>,
    }

    fn tokens() -> Tokens {
        Tokens::new(&[SecretString::from(KEY.to_owned())], 14400).unwrap()
    }

    fn api_over(
        catalog: Arc<dyn crate::ports::Catalog>,
        objects: Arc<dyn crate::ports::ObjectStore>,
    ) -> Api {
        let abilities = vec!["image_delete".to_owned(), "image_list".to_owned()];
        Api::new(Deleter::new(catalog, objects), tokens(), 2, abilities)
    }

    /// Images A and B in album "a", one object each.
    fn fixture() -> Fixture {
        let catalog = Arc::new(MemoryCatalog::default());
        let objects = Arc::new(MemoryObjectStore::default());
        for id in [A, B] {
            let key = format!("a/{id}");
            objects.put_all(std::slice::from_ref(&key));
            catalog.put(ImageRecord {
                id: ImageId::parse(id).unwrap(),
                album_id: AlbumId::parse("a").unwrap(),
                object_keys: vec![ObjectKey::parse(&key).unwrap()],
                rest: Default::default(),
            });
        }
        Fixture {
            api: api_over(catalog.clone(), objects.clone()),
            catalog,
            objects,
        }
    }

    fn token() -> String {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "exp": unix_now() + 60, "iat": unix_now(), "user_id": "u",
            "abilities": {"a": {"Access": {"image_list": true}}}
        }))
        .unwrap();
        tokens().mint(&claims, unix_now())
    }

    fn request(
        method: &str,
        path: &str,
        auth: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Request {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(Body::Text(body.to_owned())).unwrap()
    }

    fn authed(body: &str) -> Request {
        request(
            "DELETE",
            "/api/v1/images",
            Some(&format!("Bearer {}", token())),
            FORM,
            body,
        )
    }

    fn code(response: &Response<Body>) -> String {
        let Body::Text(text) = response.body() else {
            return String::new();
        };
        serde_json::from_str::<serde_json::Value>(text).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn refused_requests_never_reach_a_store() {
        let f = fixture();
        let bearer = format!("Bearer {}", token());
        let cases = [
            (
                request(
                    "DELETE",
                    "/api/v1/images",
                    None,
                    FORM,
                    &format!("image_ids[]={A}"),
                ),
                401,
            ),
            (
                request("DELETE", "/api/v1/images", Some("Bearer x.y.z"), FORM, ""),
                401,
            ),
            (authed("image_ids[]=oops"), 400),
            (
                authed(&format!(
                    "image_ids[]={A}&image_ids[]={B}&image_ids[]=00000000-0000-4000-8000-000000000000"
                )),
                400,
            ),
            (
                request("DELETE", "/api/v1/images", Some(&bearer), "text/csv", A),
                415,
            ),
            (authed(&"x".repeat(input::MAX_BODY_BYTES + 1)), 413),
            (
                request("GET", "/api/v1/images", Some(&bearer), FORM, ""),
                405,
            ),
            (
                request("DELETE", "/api/v2/images", Some(&bearer), FORM, ""),
                404,
            ),
        ];
        let mut twice = authed(&format!("image_ids[]={A}"));
        let again = HeaderValue::from_str(&format!("Bearer {}", token())).unwrap();
        twice.headers_mut().append("authorization", again);
        let no_delete_ability = |abilities: serde_json::Value| {
            let claims: Claims = serde_json::from_value(serde_json::json!({
                "exp": unix_now() + 60, "user_id": "u", "abilities": abilities
            }))
            .unwrap();
            let token = tokens().mint(&claims, unix_now());
            request(
                "DELETE",
                "/api/v1/images",
                Some(&format!("Bearer {token}")),
                FORM,
                &format!("image_ids[]={A}"),
            )
        };
        let cases = cases.into_iter().chain([
            (twice, 401),
            (no_delete_ability(serde_json::json!({})), 401),
            (
                no_delete_ability(serde_json::json!({"a": {"Access": {"image_view": true}}})),
                401,
            ),
            (
                no_delete_ability(serde_json::json!({"a": {"Access": {"image_list": false}}})),
                401,
            ),
        ]);
        for (req, status) in cases {
            let response = f.api.handle(req).await;
            assert_eq!(response.status(), status);
            assert!(response.headers().get("x-token").is_none());
        }
        assert_eq!(f.catalog.calls() + f.objects.calls(), 0);
    }

    #[tokio::test]
    async fn an_image_whose_object_stays_is_left_out_and_keeps_its_record() {
        // GIVEN B's object cannot be deleted
        let f = fixture();
        f.objects.fail_key(&format!("a/{B}"));
        // WHEN A and B are deleted
        let response = f
            .api
            .handle(authed(&format!("image_ids[]={A}&image_ids[]={B}")))
            .await;
        // THEN 200 with A only, and B's record and object remain
        assert_eq!(response.status(), 200);
        assert_eq!(response.body(), &Body::Text(format!("[\"{A}\"]")));
        assert_eq!(f.catalog.ids(), vec![B.to_owned()]);
        assert_eq!(f.objects.keys(), vec![format!("a/{B}")]);
    }

    #[tokio::test]
    async fn nothing_deleted_because_aws_failed_is_a_5xx_without_a_token() {
        let f = fixture();
        f.catalog.fail_get(A);
        let response = f.api.handle(authed(&format!("image_ids[]={A}"))).await;
        assert_eq!(response.status(), 503);
        assert_eq!(code(&response), "service_unavailable");
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(response.headers().get("x-token").is_none());
        assert_eq!(response.headers()["cache-control"], "no-cache, no-store");
    }

    #[tokio::test]
    async fn throttled_dynamodb_gives_503_with_retry_after() {
        use aws_smithy_mocks::{RuleMode, mock_client};
        // GIVEN DynamoDB throttles every read
        let rule = crate::store::dynamodb::tests::throttled_reads();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let objects = Arc::new(MemoryObjectStore::default());
        let api = api_over(
            Arc::new(DynamoCatalog::new(client, "images", 4)),
            objects.clone(),
        );
        // WHEN a delete arrives
        let response = api.handle(authed(&format!("image_ids[]={A}"))).await;
        // THEN 503, Retry-After, the JSON error, and nothing touched in S3
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(code(&response), "throttled");
        assert_eq!(objects.calls(), 0);
    }

    #[tokio::test]
    async fn the_single_route_fails_with_a_5xx_when_its_image_is_not_fully_deleted() {
        let f = fixture();
        f.objects.fail_key(&format!("a/{A}"));
        let path = format!("/api/v1/images/{}", A.to_uppercase());
        let response = f
            .api
            .handle(request(
                "DELETE",
                &path,
                Some(&format!("Token {}", token())),
                FORM,
                "",
            ))
            .await;
        assert_eq!(response.status(), 500);
        assert_eq!(code(&response), "internal_error");
        assert_eq!(f.catalog.ids().len(), 2);
    }

    #[test]
    fn the_callers_request_id_is_answered_and_the_gateways_is_kept_beside_it() {
        // GIVEN a REST event with the gateway's request id and the caller's own
        let json = include_str!("../../events/apigw-rest-bulk-delete.json");
        let mut event: serde_json::Value = serde_json::from_str(json).unwrap();
        event["headers"]["x-request-id"] = "caller-42".into();
        event["multiValueHeaders"]["x-request-id"] = serde_json::json!(["caller-42"]);
        let gateway = event["requestContext"]["requestId"]
            .as_str()
            .unwrap()
            .to_owned();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        // WHEN its ids are read THEN the caller's is answered, the gateway's kept
        let ids = request_ids(&request);
        assert_eq!(ids.answered, "caller-42");
        assert_eq!(ids.aws, gateway);
        // AND without the caller's, the gateway's is both
        event["headers"]
            .as_object_mut()
            .unwrap()
            .remove("x-request-id");
        event["multiValueHeaders"]
            .as_object_mut()
            .unwrap()
            .remove("x-request-id");
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let ids = request_ids(&request);
        assert_eq!(
            (ids.answered.as_str(), ids.aws.as_str()),
            (gateway.as_str(), gateway.as_str())
        );
    }

    /// Log output captured as text, for the tests of what the logs say.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Captured {
        /// JSON log lines of this thread captured until the guards are dropped.
        fn start() -> (Self, (tracing::Dispatch, tracing::subscriber::DefaultGuard)) {
            let logs = Self::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_writer(move || writer.clone())
                .finish();
            // A second live dispatcher first: with only one registered, tracing takes a
            // new callsite's interest from the thread that hits it first, and under
            // `cargo test` (tests as threads) another test's thread, without a
            // subscriber, could switch these log lines off for this one.
            let second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
            let guard = tracing::subscriber::set_default(subscriber);
            (logs, (second, guard))
        }

        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn refusal_log_lines_carry_the_gateways_request_id() {
        // GIVEN logs captured, and REST events (the gateway's request id in their
        // context) with a bad token, and with a token for another album
        let (logs, _capturing) = Captured::start();
        let f = fixture();
        let json = include_str!("../../events/apigw-rest-bulk-delete.json");
        let mut event: serde_json::Value = serde_json::from_str(json).unwrap();
        let gateway = event["requestContext"]["requestId"]
            .as_str()
            .unwrap()
            .to_owned();
        for authorization in [
            "Bearer x.y.z".to_owned(),
            format!("Bearer {}", token_for(&["b"], "image_list")),
            format!("Bearer {}", token_for(&["a"], "image_view")),
        ] {
            event["headers"]["authorization"] = authorization.clone().into();
            event["multiValueHeaders"]["authorization"] = serde_json::json!([authorization]);
            event["body"] = format!("image_ids[]={A}").into();
            // WHEN it is refused
            let response = f
                .api
                .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
                .await;
            assert_eq!(response.status(), 401);
        }
        // THEN the refusal lines name the gateway's request id
        let text = logs.text();
        for message in [
            "unauthenticated",
            "delete denied",
            "token grants no delete ability",
        ] {
            let line = text
                .lines()
                .find(|l| l.contains(message))
                .unwrap_or_else(|| panic!("no {message:?} line in {text}"));
            assert!(line.contains(&gateway), "{line}");
        }
    }

    #[tokio::test]
    async fn failure_log_lines_carry_the_gateways_request_id() {
        // GIVEN logs captured (as in the test above), a REST event for A and B, and
        // stores that fail: B's object for a partial deletion, every read for a
        // deletion that fails whole
        let (logs, _capturing) = Captured::start();
        let json = include_str!("../../events/apigw-rest-bulk-delete.json");
        let mut event: serde_json::Value = serde_json::from_str(json).unwrap();
        let gateway = event["requestContext"]["requestId"]
            .as_str()
            .unwrap()
            .to_owned();
        let authorization = format!("Bearer {}", token());
        event["headers"]["authorization"] = authorization.clone().into();
        event["multiValueHeaders"]["authorization"] = serde_json::json!([authorization]);
        event["body"] = format!("image_ids[]={A}&image_ids[]={B}").into();
        let partial = fixture();
        partial.objects.fail_key(&format!("a/{B}"));
        let failed = fixture();
        failed.catalog.fail_get(A);
        // WHEN each answers the event
        for (f, status) in [(partial, 200), (failed, 503)] {
            let request = lambda_http::request::from_str(&event.to_string()).unwrap();
            assert_eq!(f.api.handle(request).await.status(), status);
        }
        // THEN both failure lines name the gateway's request id
        let text = logs.text();
        for message in ["partial deletion", "deletion failed"] {
            let line = text
                .lines()
                .find(|l| l.contains(message))
                .unwrap_or_else(|| panic!("no {message:?} line in {text}"));
            assert!(line.contains(&gateway), "{line}");
        }
    }

    fn token_for(albums: &[&str], ability: &str) -> String {
        let abilities: serde_json::Map<String, serde_json::Value> = albums
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    serde_json::json!({"Access": {ability: true}}),
                )
            })
            .collect();
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "exp": unix_now() + 60, "user_id": "u", "abilities": abilities
        }))
        .unwrap();
        tokens().mint(&claims, unix_now())
    }
}
