//! The trash's routes (`docs/trash.md`): the listing, restore (one or bulk) and
//! erasure. Authorization is the deletion core's (`trash` on each image's album),
//! except the listing's, decided here from the token's albums.

use lambda_http::http::{HeaderValue, Response, StatusCode, header};
use lambda_http::{Body, Request, RequestExt};

use super::input::{self, Route, percent_decode};
use super::{Api, ApiError, JSON, Tally, deadline};
use crate::domain::restore::{Caller, TRASH_ABILITY, TrashError, TrashOutcome};
use crate::domain::trash::{ListedAt, RequestId, Trashed, UnixTime};
use crate::domain::{AlbumId, Claims, ImageId, ImageIds};
use crate::ports::{StoreError, StoreErrorKind};

/// Entries per listing page.
pub const PAGE: usize = 100;
/// Albums one listing reads (one query each, per page); past that, name one.
pub const MAX_LISTED_ALBUMS: usize = 50;
/// Album queries in flight at once for one page.
const LISTING_CONCURRENCY: usize = 10;

impl Api {
    pub(super) async fn serve_trash(
        &self,
        route: Route<'_>,
        request: &Request,
        claims: &Claims,
        aws_request_id: &str,
        tally: &mut Tally,
    ) -> Result<Response<Body>, ApiError> {
        let ids = match route {
            Route::TrashList => return self.list(request, claims, aws_request_id).await,
            Route::RestoreOne(raw) => ImageIds::one(input::one_id(raw)?),
            _ => input::bulk_ids(request, self.max_ids)?,
        };
        tally.requested = ids.len();
        let deadline = deadline(request);
        let request_id = RequestId::new(aws_request_id);
        let caller = Caller {
            abilities: &claims.abilities,
            user_id: &claims.user_id,
            request_id: &request_id,
        };
        let result = if route == Route::Erase {
            self.deleter.erase(&ids, caller, deadline).await
        } else {
            self.deleter.restore(&ids, caller, deadline).await
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(TrashError::Denied(denied)) => {
                tracing::warn!(aws_request_id, denied = denied.ids.len(), user_id = %claims.user_id, "trash request denied");
                return Err(ApiError::Unauthorized);
            }
            Err(err) => return Err(failure(&err_store(err), 0, aws_request_id)),
        };
        tally.missing = outcome.missing.len();
        tally.failed = outcome.failed.len();
        tally.metrics.unprocessed_retries = outcome.retries;
        // A 5xx only when nothing at all was done (as for delete).
        if let Some(err) = &outcome.error
            && outcome.done.is_empty()
        {
            return Err(failure(err, outcome.failed.len(), aws_request_id));
        }
        match route {
            Route::RestoreOne(_) => one_answer(&outcome, aws_request_id),
            _ => Ok(ids_answer(&outcome, aws_request_id)),
        }
    }

    /// `GET /api/v1/trashed_images[?album_id=...][&page=...]`: newest first over the
    /// albums the token has `trash` on (or the one named), `PAGE` at a time; the
    /// `X-next-page` header holds the `page` of the next one while more remain.
    async fn list(
        &self,
        request: &Request,
        claims: &Claims,
        aws_request_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let query = |name: &str| {
            request
                .query_string_parameters_ref()
                .and_then(|q| q.first(name))
                .map(percent_decode)
        };
        let after = match query("page") {
            None => None,
            Some(raw) => {
                Some(ListedAt::parse(&raw).ok_or(ApiError::InvalidParameter { name: "page" })?)
            }
        };
        let albums = match query("album_id") {
            Some(raw) => {
                let album = AlbumId::parse(&raw)
                    .map_err(|_| ApiError::InvalidParameter { name: "album_id" })?;
                if !claims.abilities.grants(&album, TRASH_ABILITY) {
                    tracing::warn!(aws_request_id, user_id = %claims.user_id, "trash listing denied");
                    return Err(ApiError::Unauthorized);
                }
                vec![album]
            }
            None => claims.abilities.albums_granting(TRASH_ABILITY),
        };
        if albums.len() > MAX_LISTED_ALBUMS {
            return Err(ApiError::TooManyAlbums {
                max: MAX_LISTED_ALBUMS,
            });
        }
        let deadline = deadline(request);
        let pages = crate::retry::for_each_bounded(albums, LISTING_CONCURRENCY, |album| {
            let after = after.clone();
            async move {
                self.deleter
                    .trash_page(&album, after.as_ref(), PAGE, deadline)
                    .await
            }
        })
        .await;
        // The newest `PAGE` of the albums' newest `PAGE` each are the newest overall.
        let mut entries: Vec<Trashed> = Vec::new();
        let mut more = false;
        for page in pages {
            let page = page.map_err(|err| failure(&err_store(err), 0, aws_request_id))?;
            more |= page.next.is_some();
            entries.extend(page.entries);
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.listed_at()));
        more |= entries.len() > PAGE;
        entries.truncate(PAGE);
        let body: Vec<serde_json::Value> = entries.iter().map(listed).collect();
        let mut response = json(&body);
        if more && let Some(next) = entries.last().and_then(|e| e.listed_at().key()) {
            let next = HeaderValue::from_str(&next).expect("digits, _ and a UUID");
            response.headers_mut().insert("x-next-page", next);
        }
        Ok(response)
    }
}

/// What the listing shows of one entry.
fn listed(entry: &Trashed) -> serde_json::Value {
    serde_json::json!({
        "id": entry.id,
        "album_id": entry.album_id.as_str(),
        "deleted_at": rfc3339(entry.deleted_at),
        "deleted_by": entry.deleted_by.to_string(),
        "purge_at": rfc3339(entry.purge_at),
    })
}

/// `2026-12-05T23:49:23Z`.
fn rfc3339(at: UnixTime) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_secs(at.0)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| at.0.to_string())
}

fn json<T: serde::Serialize>(body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).expect("the answer serializes");
    let mut response = Response::new(Body::Text(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// 200 with the ids restored or erased, newest-requested first (as delete answers).
fn ids_answer(outcome: &TrashOutcome, aws_request_id: &str) -> Response<Body> {
    if let Some(err) = &outcome.error {
        tracing::warn!(aws_request_id, error = %err, failed = outcome.failed.len(), "partial trash request");
    }
    let ids: Vec<&ImageId> = outcome.done.iter().rev().collect();
    json(&ids)
}

/// 204 when restored, 404 when it was not in the trash.
fn one_answer(outcome: &TrashOutcome, aws_request_id: &str) -> Result<Response<Body>, ApiError> {
    if let Some(err) = &outcome.error {
        return Err(failure(err, outcome.failed.len(), aws_request_id));
    }
    if outcome.done.is_empty() {
        return Err(ApiError::ImageNotFound);
    }
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// Logs the cause chain (once) and turns it into the 5xx to answer.
fn failure(err: &StoreError, failed: usize, aws_request_id: &str) -> ApiError {
    tracing::error!(aws_request_id, error = %err.chain(), failed, "trash request failed");
    match err.kind() {
        StoreErrorKind::Throttled => ApiError::Throttled,
        StoreErrorKind::Unavailable => ApiError::Unavailable,
        StoreErrorKind::Failed => ApiError::Internal,
    }
}

/// The store error inside a trash error that is not a denial.
fn err_store(err: TrashError) -> StoreError {
    match err {
        TrashError::Store(err) => err,
        other => StoreError::new(StoreErrorKind::Failed, "trash").with_source(other.to_string()),
    }
}
