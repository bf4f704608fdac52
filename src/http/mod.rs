//! The HTTP entry point: `DELETE /api/v1/images` and `DELETE /api/v1/images/{id}`
//! behind API Gateway (REST and HTTP APIs), a function URL or an ALB.
//!
//! Order of work: route, authenticate, parse (all without AWS), then the deletion
//! core; every answer, errors included, leaves through `finish`.

pub mod error;
pub mod input;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};

use crate::auth::{Tokens, token_from_header};
use crate::domain::{Authority, Claims, DeleteOutcome, Deleter, ImageId, ImageIds};
use crate::ports::StoreErrorKind;
use crate::retry::Deadline;
pub use error::ApiError;
use input::Route;

pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// Time kept back from the invocation's deadline to build and send the answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// Least budget granted: local emulators hand out deadlines that passed while the
/// function was compiling; on Lambda an overrun ends the invocation, which is safe
/// because every step is idempotent and records outlive their objects.
const MIN_BUDGET: Duration = Duration::from_secs(1);
/// Budget when the invocation has no deadline (tests, local tools).
const DEFAULT_BUDGET: Duration = Duration::from_secs(25);

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
}

/// What one request did, for its log line.
#[derive(Default)]
struct Tally {
    requested: usize,
    deleted: usize,
    missing: usize,
    failed: usize,
    objects_deleted: usize,
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
        }
    }

    /// Answers one request. Never fails: every error is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&request);
        let mut tally = Tally::default();
        let response = match self.serve(&request, &mut tally).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        let response = finish(response, &request_id, started);
        tracing::info!(
            request_id = %request_id,
            status = response.status().as_u16(),
            requested = tally.requested,
            deleted = tally.deleted,
            missing = tally.missing,
            failed = tally.failed,
            objects_deleted = tally.objects_deleted,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        response
    }

    async fn serve(
        &self,
        request: &Request,
        tally: &mut Tally,
    ) -> Result<Response<Body>, ApiError> {
        let route = input::route(request, stage(request))?;
        let claims = self.authenticate(request.headers())?;
        let ids = match route {
            Route::Bulk => input::bulk_ids(request, self.max_ids)?,
            Route::One(raw) => ImageIds::one(input::one_id(raw)?),
        };
        tally.requested = ids.len();
        let authority = Authority::Token {
            abilities: &claims.abilities,
            required: &self.delete_abilities,
        };
        let outcome = match self
            .deleter
            .delete(&ids, authority, deadline(request))
            .await
        {
            Ok(outcome) => outcome,
            Err(denied) => {
                tracing::warn!(denied = denied.ids.len(), user_id = %claims.user_id, "delete denied");
                return Err(ApiError::Unauthorized);
            }
        };
        tally.deleted = outcome.deleted.len();
        tally.missing = outcome.missing.len();
        tally.failed = outcome.failed.len();
        tally.objects_deleted = outcome.objects_deleted;
        let fresh_token = self.tokens.mint(&claims, unix_now());
        let mut response = match route {
            Route::Bulk => bulk_answer(outcome)?,
            Route::One(_) => one_answer(outcome)?,
        };
        let token = HeaderValue::from_str(&fresh_token).expect("a JWT is a valid header value");
        response.headers_mut().insert("x-token", token);
        Ok(response)
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        token_from_header(value)
            .and_then(|token| self.tokens.verify(token, unix_now()))
            .map_err(|reason| {
                tracing::info!(%reason, "unauthenticated");
                ApiError::Unauthorized
            })
    }
}

/// 200 with the deleted ids, newest-requested first (the seed's order); a 5xx only
/// when AWS failed and nothing at all was deleted.
fn bulk_answer(outcome: DeleteOutcome) -> Result<Response<Body>, ApiError> {
    if outcome.deleted.is_empty() {
        upstream_failure(&outcome)?;
    } else if let Some(err) = &outcome.error {
        tracing::warn!(error = %err, failed = outcome.failed.len(), "partial deletion");
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
fn one_answer(outcome: DeleteOutcome) -> Result<Response<Body>, ApiError> {
    upstream_failure(&outcome)?;
    if outcome.deleted.is_empty() {
        return Ok(ApiError::ImageNotFound.into_response());
    }
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// Logs the cause chain of a failure (once) and turns it into the 5xx to answer.
fn upstream_failure(outcome: &DeleteOutcome) -> Result<(), ApiError> {
    let Some(err) = &outcome.error else {
        return Ok(());
    };
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, failed = outcome.failed.len(), "deletion failed");
    Err(ApiError::Upstream {
        throttled: err.kind() == StoreErrorKind::Throttled,
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

/// The caller's `X-Request-Id` when it is a sane token, else the gateway's id, else
/// the invocation's.
fn request_id(request: &Request) -> String {
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
    if let Some(id) = caller {
        return id.to_owned();
    }
    let gateway = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    gateway
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{:032x}", fastrand::u128(..)))
}

fn stage(request: &Request) -> Option<&str> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    }
}

/// The invocation's deadline less the answer margin, never under `MIN_BUDGET`.
fn deadline(request: &Request) -> Deadline {
    let budget = request
        .lambda_context_ref()
        .filter(|c| c.deadline > 0)
        .map(|c| {
            let deadline = UNIX_EPOCH + Duration::from_millis(c.deadline);
            let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
            tracing::debug!(left_ms = left.as_millis() as u64, "invocation time left");
            left.saturating_sub(ANSWER_MARGIN)
        })
        .unwrap_or(DEFAULT_BUDGET);
    Deadline::after(budget.max(MIN_BUDGET))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
