//! Adapters for the ports: DynamoDB and S3 for production, in-memory fakes for fast
//! tests and fault injection.

pub mod dynamodb;
pub mod eventbridge;
pub mod memory;
pub mod s3;
pub mod sqs;
#[cfg(test)]
pub(crate) mod test_calls;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::error::SdkError;

use crate::ports::{StoreError, StoreErrorKind};

/// Error codes with which AWS services ask callers to slow down.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "TooManyRequestsException",
];

/// Classifies an SDK error (after the SDK's own retries) for the caller.
pub(crate) fn classify<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => StoreErrorKind::Unavailable,
        _ if err.code().is_some_and(|c| THROTTLING_CODES.contains(&c)) => StoreErrorKind::Throttled,
        SdkError::ResponseError(_) => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Failed,
    };
    StoreError::new(kind, operation).with_source(err)
}

/// Whether a per-item error code (e.g. in a `DeleteObjects` answer) means throttling.
pub(crate) fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Splits `items` into chunks of at most `size` (a service's batch limit) and runs
/// `call` on each, at most `bound` at once, each started a turn after the one before
/// (`aws::turns`); results in completion order.
pub(crate) async fn in_chunks<T, R, F, Fut>(
    items: &[T],
    size: usize,
    bound: usize,
    mut call: F,
) -> Vec<R>
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let chunks = items.chunks(size).map(<[T]>::to_vec).collect();
    let turns = crate::aws::turns::Turns::default();
    crate::retry::for_each_bounded(chunks, bound, |chunk| turns.take(call(chunk))).await
}

/// Awaits an SDK call unless the deadline comes first; either failure as a
/// `StoreError`.
pub(crate) async fn send_before<F, O, E, R>(
    deadline: crate::retry::Deadline,
    operation: &'static str,
    call: F,
) -> Result<O, StoreError>
where
    F: std::future::Future<Output = Result<O, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    tokio::time::timeout_at(deadline.instant(), call)
        .await
        .map_err(|_| deadline_passed(operation))?
        .map_err(|err| classify(operation, err))
}

/// The error for work still pending when the invocation's time ran out.
pub(crate) fn deadline_passed(operation: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, operation)
        .with_source("deadline reached with work pending")
}
