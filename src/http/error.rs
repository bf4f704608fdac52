//! Every way the endpoint can refuse or fail, mapped to a status and a client-safe
//! body in one place. Internal causes are logged by the caller, never sent.

use lambda_http::Body;
use lambda_http::http::{HeaderValue, Response, StatusCode, header};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("no such route")]
    NotFound,
    /// The path exists; `allow` lists its methods.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("no such image")]
    ImageNotFound,
    /// Missing, malformed, badly signed or expired token, or an image the token may
    /// not delete. One answer for all, so a caller learns nothing from the difference.
    #[error("access denied")]
    Unauthorized,
    #[error("{detail}")]
    InvalidImageId { detail: String },
    /// A query parameter that cannot be read (`album_id`, `page`).
    #[error("invalid parameter {name}")]
    InvalidParameter { name: &'static str },
    /// A trash listing over more albums than one request reads.
    #[error("too many albums")]
    TooManyAlbums { max: usize },
    #[error("too many image ids")]
    TooManyIds { max: usize },
    #[error("too many image ids in the query string")]
    TooManyQueryIds { max: usize },
    #[error("unreadable body")]
    InvalidBody,
    /// The event itself cannot be read as an HTTP request (see `event`).
    #[error("unreadable request")]
    InvalidRequest,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// A body sent with a `Content-Encoding` (gzip, ...): none is decoded.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    #[error("body too large")]
    BodyTooLarge { max: usize },
    /// AWS throttled us and nothing could be done: retry after a pause.
    #[error("throttled")]
    Throttled,
    /// AWS could not be reached in time and nothing could be done.
    #[error("unavailable")]
    Unavailable,
    /// AWS refused the work and nothing could be done.
    #[error("internal error")]
    Internal,
}

/// `Retry-After` for throttled and timed-out answers, in seconds: both are worth
/// retrying soon, and nothing was deleted.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::ImageNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::InvalidImageId { .. }
            | Self::InvalidParameter { .. }
            | Self::TooManyAlbums { .. }
            | Self::TooManyIds { .. }
            | Self::TooManyQueryIds { .. }
            | Self::InvalidBody
            | Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType | Self::UnsupportedEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Throttled | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::ImageNotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::InvalidImageId { .. } => "invalid_image_id",
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::TooManyAlbums { .. } => "too_many_albums",
            Self::TooManyIds { .. } | Self::TooManyQueryIds { .. } => "too_many_image_ids",
            Self::InvalidBody => "invalid_body",
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedMediaType | Self::UnsupportedEncoding => "unsupported_media_type",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::Throttled => "throttled",
            Self::Unavailable => "service_unavailable",
            Self::Internal => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::NotFound => "No route matches this path.".into(),
            Self::MethodNotAllowed { allow } => format!("This path only accepts {allow}."),
            Self::ImageNotFound => "No image has this id.".into(),
            Self::Unauthorized => "Access denied".into(),
            Self::InvalidImageId { detail } => {
                format!("{detail}; ids are UUIDs like 7dca41d5-d76a-4ebb-9e00-dd13c13fc238.")
            }
            Self::TooManyIds { max } => {
                format!("At most {max} distinct image ids per request, and {max} under a key of the body.")
            }
            Self::TooManyQueryIds { max } => {
                format!("At most {max} image ids in the query string; send more in the body.")
            }
            Self::InvalidParameter { name } => {
                format!("The {name} parameter is malformed; page takes the X-next-page of the answer before.")
            }
            Self::TooManyAlbums { max } => {
                format!("The token has trash on more than {max} albums: name one with album_id.")
            }
            Self::InvalidBody => {
                "The body is not a readable form (image_ids[]=...) or JSON object ({\"image_ids\": [...]}).".into()
            }
            Self::InvalidRequest => {
                "The request could not be read: its host, path, query string or body encoding is malformed, or it repeats Content-Type or Content-Encoding.".into()
            }
            Self::UnsupportedMediaType => {
                "Send application/x-www-form-urlencoded or application/json.".into()
            }
            Self::UnsupportedEncoding => "Send the body without a Content-Encoding.".into(),
            Self::BodyTooLarge { max } => format!("The body is larger than {max} bytes."),
            Self::Throttled => "The service is busy; retry the request shortly.".into(),
            Self::Unavailable => "The service did not answer in time; retry the request.".into(),
            Self::Internal => "The request could not be completed.".into(),
        }
    }

    /// The response, before the headers every answer carries.
    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized => {
                // The seed's answer: an empty body and the reason in a header.
                headers.insert("x-message", HeaderValue::from_static("Access denied"));
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Token realm=\"Application\""),
                );
                return response;
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Throttled | Self::Unavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        let body = serde_json::json!({"error": self.code(), "message": self.message()});
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(super::JSON));
        *response.body_mut() = Body::Text(body.to_string());
        response
    }
}
