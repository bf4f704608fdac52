//! The object store on S3: `DeleteObjects` in chunks of the service's limit, run
//! concurrently, reading its per-key errors and retrying the transient ones; and, for
//! the trash (a versioned bucket), each key's versions listed and deleted by id.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::BuildError;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{in_chunks, is_throttling_code, send_before};
use crate::domain::ObjectKey;
use crate::domain::trash::{ObjectVersion, VersionId};
use crate::ports::{Lookup, ObjectStore, ObjectVersions, Partial, StoreError, StoreErrorKind};
use crate::retry::{Backoff, Deadline};

/// S3 caps `DeleteObjects` at 1000 keys per call.
pub const MAX_DELETE_BATCH: usize = 1000;

/// The prefix the warm-up lists (the role may list only it): no image key starts so.
pub const WARM_UP_PREFIX: &str = ".warm-up/";

/// Per-key error codes worth another try within the invocation.
const TRANSIENT_CODES: &[&str] = &["InternalError", "ServiceUnavailable", "SlowDown"];

/// Image objects in one S3 bucket.
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    concurrency: usize,
}

impl S3ObjectStore {
    /// `concurrency` bounds the calls in flight for one batch operation.
    pub fn new(client: Client, bucket: impl Into<String>, concurrency: usize) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            concurrency,
        }
    }

    async fn delete_chunk(&self, keys: Vec<ObjectKey>, deadline: Deadline) -> Partial<ObjectKey> {
        const OP: &str = "S3 DeleteObjects";
        let mut pending = keys;
        let mut backoff = Backoff::default();
        let mut result = Partial::default();
        loop {
            let sent = async {
                let delete = quiet_delete(pending.iter().map(|k| (k.as_str(), None)))
                    .map_err(|err| StoreError::new(StoreErrorKind::Failed, OP).with_source(err))?;
                let call = self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send();
                send_before(deadline, OP, call).await
            };
            let output = match sent.await {
                Ok(output) => output,
                Err(err) => {
                    result.failed.extend(pending.iter().cloned());
                    result.error = StoreError::worst(result.error, Some(err));
                    return result;
                }
            };
            // Keys the answer says failed; without a key, an error covers the whole chunk.
            let mut errors: HashMap<&str, &str> = HashMap::new();
            let mut unattributed = None;
            for error in output.errors() {
                let code = error.code().unwrap_or("Unknown");
                match error.key() {
                    Some(key) => {
                        errors.insert(key, code);
                    }
                    None => unattributed = Some(code),
                }
            }
            if let Some(code) = unattributed {
                result.failed.extend(pending.iter().cloned());
                result.error = StoreError::worst(result.error, Some(per_key_error(OP, code)));
                return result;
            }
            if errors.is_empty() {
                return result;
            }
            let mut retry = Vec::new();
            let mut worst = None;
            let failed_keys: HashSet<&str> = errors.keys().copied().collect();
            for key in pending.iter().filter(|k| failed_keys.contains(k.as_str())) {
                let code = errors[key.as_str()];
                if TRANSIENT_CODES.contains(&code) {
                    retry.push(key.clone());
                } else {
                    result.failed.push(key.clone());
                    worst = StoreError::worst(worst, Some(per_key_error(OP, code)));
                }
            }
            tracing::warn!(
                failed = errors.len(),
                retrying = retry.len(),
                "S3 per-key delete errors"
            );
            result.item_errors += errors.len() as u64;
            result.error = StoreError::worst(result.error, worst);
            if retry.is_empty() {
                return result;
            }
            if !backoff.wait(deadline).await {
                let code = errors[retry[0].as_str()];
                result.failed.extend(retry);
                result.error = StoreError::worst(result.error, Some(per_key_error(OP, code)));
                return result;
            }
            pending = retry;
            result.retries += 1;
        }
    }
}

impl S3ObjectStore {
    /// Every version of `key`: `ListObjectVersions` with the key as prefix, page by
    /// page while the pages are still about this key (the prefix also matches longer
    /// keys, which are skipped).
    async fn versions_of(
        &self,
        key: ObjectKey,
        deadline: Deadline,
    ) -> Lookup<ObjectVersion, ObjectKey> {
        const OP: &str = "S3 ListObjectVersions";
        let mut lookup = Lookup::default();
        let mut marker: Option<(String, Option<String>)> = None;
        loop {
            let mut call = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key.as_str());
            if let Some((key_marker, version_marker)) = &marker {
                call = call
                    .key_marker(key_marker)
                    .set_version_id_marker(version_marker.clone());
            }
            let output = match send_before(deadline, OP, call.send()).await {
                Ok(output) => output,
                Err(err) => {
                    return Lookup {
                        unread: vec![key],
                        error: Some(err),
                        ..Lookup::default()
                    };
                }
            };
            let bytes = output
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id(), false));
            let markers = output
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id(), true));
            for (listed, version, marker) in bytes.chain(markers) {
                if listed != Some(key.as_str()) {
                    continue;
                }
                // An unversioned object lists as version "null": a real id to S3.
                let Some(version) = version.and_then(VersionId::parse) else {
                    let err = StoreError::new(StoreErrorKind::Failed, OP)
                        .with_source("a version without a version id");
                    return Lookup {
                        unread: vec![key],
                        error: Some(err),
                        ..Lookup::default()
                    };
                };
                lookup.found.push(ObjectVersion {
                    key: key.clone(),
                    version,
                    marker,
                });
            }
            let next = output.next_key_marker().filter(|k| *k == key.as_str());
            match next {
                Some(next) if output.is_truncated() == Some(true) => {
                    let version = output.next_version_id_marker().map(str::to_owned);
                    marker = Some((next.to_owned(), version));
                }
                _ => return lookup,
            }
        }
    }

    /// Deletes one chunk of versions by id; a version that S3 refuses fails its key.
    async fn delete_version_chunk(
        &self,
        versions: Vec<ObjectVersion>,
        deadline: Deadline,
    ) -> Partial<ObjectVersion> {
        const OP: &str = "S3 DeleteObjects (versions)";
        let delete = quiet_delete(
            versions
                .iter()
                .map(|v| (v.key.as_str(), Some(v.version.as_str()))),
        );
        let sent = async {
            let delete = delete
                .map_err(|err| StoreError::new(StoreErrorKind::Failed, OP).with_source(err))?;
            let call = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send();
            send_before(deadline, OP, call).await
        };
        let output = match sent.await {
            Ok(output) => output,
            Err(err) => {
                return Partial {
                    failed: versions,
                    error: Some(err),
                    ..Partial::default()
                };
            }
        };
        let mut result = Partial::default();
        for error in output.errors() {
            let code = error.code().unwrap_or("Unknown");
            result.item_errors += 1;
            result.error = StoreError::worst(result.error, Some(per_key_error(OP, code)));
            // Without a key, the error covers the whole chunk.
            let failed = versions.iter().filter(|v| {
                error.key().is_none()
                    || (error.key() == Some(v.key.as_str())
                        && error.version_id().is_none_or(|id| id == v.version.as_str()))
            });
            result.failed.extend(failed.cloned());
        }
        result
    }
}

#[async_trait]
impl ObjectVersions for S3ObjectStore {
    async fn versions(
        &self,
        keys: &[ObjectKey],
        deadline: Deadline,
    ) -> Lookup<ObjectVersion, ObjectKey> {
        crate::retry::for_each_bounded(keys.to_vec(), self.concurrency, |key| {
            self.versions_of(key, deadline)
        })
        .await
        .into_iter()
        .collect()
    }

    async fn delete_versions(
        &self,
        versions: &[ObjectVersion],
        deadline: Deadline,
    ) -> Partial<ObjectVersion> {
        in_chunks(versions, MAX_DELETE_BATCH, self.concurrency, |chunk| {
            self.delete_version_chunk(chunk, deadline)
        })
        .await
        .into_iter()
        .collect()
    }
}

/// The `Delete` of these objects (a key, and a version id to delete that version for
/// good), quiet: S3 answers only those it could not delete. The builders fail only on
/// a missing required field, and every one is set here.
fn quiet_delete<'a>(
    objects: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Delete, BuildError> {
    let objects = objects
        .map(|(key, version)| {
            ObjectIdentifier::builder()
                .key(key)
                .set_version_id(version.map(str::to_owned))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Delete::builder()
        .set_objects(Some(objects))
        .quiet(true)
        .build()
}

fn per_key_error(operation: &'static str, code: &str) -> StoreError {
    let kind = if is_throttling_code(code) {
        StoreErrorKind::Throttled
    } else {
        StoreErrorKind::Failed
    };
    StoreError::new(kind, operation).with_source(format!("per-key error {code}"))
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    /// A `ListObjectsV2` of zero keys under a prefix no image has, through this very
    /// client: no S3 call the role may make is freer of side effects (a delete of a
    /// missing key leaves a delete marker in a versioned bucket). The role may list
    /// only this prefix (`template.yaml`).
    async fn warm_up(&self, deadline: Deadline) {
        const OP: &str = "S3 ListObjectsV2 (warm-up)";
        let sent = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(WARM_UP_PREFIX)
            .max_keys(0)
            .send();
        match send_before(deadline, OP, sent).await {
            Ok(_) => tracing::debug!("warmed up the S3 client"),
            Err(err) => tracing::info!(error = %err, "warm-up failed; the first request connects"),
        }
    }

    async fn delete(&self, keys: &[ObjectKey], deadline: Deadline) -> Partial<ObjectKey> {
        in_chunks(keys, MAX_DELETE_BATCH, self.concurrency, |chunk| {
            self.delete_chunk(chunk, deadline)
        })
        .await
        .into_iter()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    //! Per-key errors and chunking, injected by a fake S3 that reads the keys off the
    //! wire and answers with errors for some (moto never reports per-key errors); the
    //! warm-up with `aws-smithy-mocks`.
    use super::*;
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_smithy_http_client::test_util::infallible_client_fn;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::body::SdkBody;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn keys(n: usize) -> Vec<ObjectKey> {
        (0..n)
            .map(|i| ObjectKey::parse(&format!("k/{i}")).unwrap())
            .collect()
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(10))
    }

    /// A client whose S3 answers each `DeleteObjects` with the per-key errors
    /// `errors(keys on the wire)` gives, as (key, code); it logs the keys of each call.
    fn s3_erring(
        errors: impl Fn(&[String]) -> Vec<(String, &'static str)> + Send + Sync + 'static,
    ) -> (Client, Arc<Mutex<Vec<Vec<String>>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        let http = infallible_client_fn(move |request: http::Request<SdkBody>| {
            let body = std::str::from_utf8(request.body().bytes().unwrap()).unwrap();
            assert!(body.ends_with("<Quiet>true</Quiet></Delete>"), "{body}");
            let sent: Vec<String> = body
                .split("<Key>")
                .skip(1)
                .map(|rest| rest.split_once("</Key>").unwrap().0.to_owned())
                .collect();
            let answer: String = errors(&sent)
                .iter()
                .map(|(key, code)| {
                    format!("<Error><Key>{key}</Key><Code>{code}</Code><Message>injected</Message></Error>")
                })
                .collect();
            log.lock().unwrap().push(sent);
            http::Response::builder()
                .status(200)
                .body(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{answer}</DeleteResult>"))
                .unwrap()
        });
        let config = aws_sdk_s3::Config::builder()
            .with_test_defaults_v2()
            .http_client(http)
            .build();
        (Client::from_conf(config), calls)
    }

    #[tokio::test]
    async fn a_per_key_error_fails_only_that_key() {
        // GIVEN S3 refuses to delete k/1
        let (client, calls) = s3_erring(|_| vec![("k/1".into(), "AccessDenied")]);
        // WHEN three keys are deleted
        let result = S3ObjectStore::new(client, "b", 4)
            .delete(&keys(3), deadline())
            .await;
        // THEN all three were sent, only k/1 failed, not retried, with a reason
        assert_eq!(*calls.lock().unwrap(), [["k/0", "k/1", "k/2"]]);
        assert_eq!(result.failed, vec![ObjectKey::parse("k/1").unwrap()]);
        assert_eq!(result.error.unwrap().kind(), StoreErrorKind::Failed);
    }

    #[tokio::test]
    async fn transient_per_key_errors_are_retried() {
        // GIVEN S3 answers InternalError for the first key of any call of several keys
        let (client, calls) = s3_erring(|sent| match sent {
            [first, _, ..] => vec![(first.clone(), "InternalError")],
            _ => Vec::new(),
        });
        // WHEN three keys are deleted
        let result = S3ObjectStore::new(client, "b", 4)
            .delete(&keys(3), deadline())
            .await;
        // THEN that key alone is sent again, and all are deleted
        assert!(result.failed.is_empty() && result.error.is_none());
        assert_eq!(
            *calls.lock().unwrap(),
            [vec!["k/0", "k/1", "k/2"], vec!["k/0"]]
        );
        assert_eq!((result.retries, result.item_errors), (1, 1));
    }

    #[tokio::test]
    async fn slow_down_until_the_deadline_is_reported_as_throttling() {
        // GIVEN S3 answers SlowDown for every key
        let (client, _) = s3_erring(|sent| sent.iter().map(|k| (k.clone(), "SlowDown")).collect());
        // WHEN two keys are deleted before a near deadline
        let result = S3ObjectStore::new(client, "b", 4)
            .delete(&keys(2), Deadline::after(Duration::from_millis(200)))
            .await;
        // THEN both failed, as throttling
        assert_eq!(result.failed.len(), 2);
        assert_eq!(result.error.unwrap().kind(), StoreErrorKind::Throttled);
    }

    #[tokio::test]
    async fn deletes_are_chunked_to_1000_keys() {
        // GIVEN an S3 that deletes everything
        let (client, calls) = s3_erring(|_| Vec::new());
        // WHEN 2500 keys are deleted
        let result = S3ObjectStore::new(client, "b", 4)
            .delete(&keys(2500), deadline())
            .await;
        // THEN three calls carried them all, none over S3's limit
        assert!(result.failed.is_empty());
        let mut sizes: Vec<usize> = calls.lock().unwrap().iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, [500, MAX_DELETE_BATCH, MAX_DELETE_BATCH]);
    }

    #[tokio::test]
    async fn the_warm_up_lists_no_key_under_a_prefix_no_image_has() {
        // GIVEN an S3 that checks what the warm-up asks
        let rule = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(|r| {
            // THEN zero keys, under the warm-up prefix only, of the bucket
            assert_eq!(r.bucket(), Some("images"));
            assert_eq!(r.prefix(), Some(WARM_UP_PREFIX));
            assert_eq!(r.max_keys(), Some(0));
            ListObjectsV2Output::builder().build()
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule]);
        // WHEN the store warms up
        S3ObjectStore::new(client, "images", 4)
            .warm_up(Deadline::after(Duration::from_secs(5)))
            .await;
        assert_eq!(rule.num_calls(), 1);
    }
}
