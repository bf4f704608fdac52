//! The object store on S3: `DeleteObjects` in chunks of the service's limit, run
//! concurrently, reading its per-key errors and retrying the transient ones; and, for
//! the trash (a versioned bucket), each key's versions listed and deleted by id.

use std::collections::HashMap;

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

    /// One `DeleteObjects` of up to `MAX_DELETE_BATCH` entries, quiet, sent again
    /// for the entries whose per-key error is transient until the deadline; an entry
    /// S3 refuses otherwise fails alone, an error naming no key fails the chunk.
    async fn delete_chunk<T: Deletion>(
        &self,
        op: &'static str,
        entries: Vec<T>,
        deadline: Deadline,
    ) -> Partial<T> {
        let mut pending = entries;
        let mut backoff = Backoff::default();
        let mut result = Partial::default();
        loop {
            let sent = async {
                let delete = quiet_delete(pending.iter().map(|e| (e.key(), e.version())))
                    .map_err(|err| StoreError::new(StoreErrorKind::Failed, op).with_source(err))?;
                let call = self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send();
                send_before(deadline, op, call).await
            };
            let output = match sent.await {
                Ok(output) => output,
                Err(err) => {
                    result.failed.extend(pending);
                    result.error = StoreError::worst(result.error, Some(err));
                    return result;
                }
            };
            // The errors by key, each with the version it names, if any.
            let mut errors: HashMap<&str, Vec<(Option<&str>, &str)>> = HashMap::new();
            for error in output.errors() {
                let code = error.code().unwrap_or("Unknown");
                let Some(key) = error.key() else {
                    result.failed.extend(pending);
                    result.error = StoreError::worst(result.error, Some(per_key_error(op, code)));
                    return result;
                };
                errors
                    .entry(key)
                    .or_default()
                    .push((error.version_id(), code));
            }
            if errors.is_empty() {
                return result;
            }
            let mut retry = Vec::new();
            let mut worst = None;
            let mut last_code = "Unknown";
            for entry in pending {
                let code = errors.get(entry.key()).and_then(|named| {
                    named.iter().find_map(|&(version, code)| {
                        let same = version.is_none()
                            || entry.version().is_none()
                            || version == entry.version();
                        same.then_some(code)
                    })
                });
                match code {
                    None => {}
                    Some(code) if TRANSIENT_CODES.contains(&code) => {
                        last_code = code;
                        retry.push(entry);
                    }
                    Some(code) => {
                        result.failed.push(entry);
                        worst = StoreError::worst(worst, Some(per_key_error(op, code)));
                    }
                }
            }
            let refused = output.errors().len();
            tracing::warn!(
                failed = refused,
                retrying = retry.len(),
                "S3 per-key delete errors"
            );
            result.item_errors += refused as u64;
            result.error = StoreError::worst(result.error, worst);
            if retry.is_empty() {
                return result;
            }
            if !backoff.wait(deadline).await {
                result.failed.extend(retry);
                result.error = StoreError::worst(result.error, Some(per_key_error(op, last_code)));
                return result;
            }
            pending = retry;
            result.retries += 1;
        }
    }
}

/// One entry of a `DeleteObjects`: a key (in a versioned bucket, hidden behind a
/// delete marker) or one version of a key (gone for good).
trait Deletion: Clone + Send + Sync {
    fn key(&self) -> &str;
    fn version(&self) -> Option<&str>;
}

impl Deletion for ObjectKey {
    fn key(&self) -> &str {
        self.as_str()
    }
    fn version(&self) -> Option<&str> {
        None
    }
}

impl Deletion for ObjectVersion {
    fn key(&self) -> &str {
        self.key.as_str()
    }
    fn version(&self) -> Option<&str> {
        Some(self.version.as_str())
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
            self.delete_chunk("S3 DeleteObjects (versions)", chunk, deadline)
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
            self.delete_chunk("S3 DeleteObjects", chunk, deadline)
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

    /// Versions named `key@version`, as the fake S3 below shows them.
    fn versions(named: &[&str]) -> Vec<ObjectVersion> {
        named
            .iter()
            .map(|n| {
                let (key, version) = n.split_once('@').unwrap();
                ObjectVersion {
                    key: ObjectKey::parse(key).unwrap(),
                    version: VersionId::parse(version).unwrap(),
                    marker: true,
                }
            })
            .collect()
    }

    /// A client whose S3 answers each `DeleteObjects` with the per-key errors
    /// `errors(entries on the wire)` gives, as (entry, code); it logs the entries of
    /// each call. An entry is its key, `key@version` when it names a version.
    fn s3_erring(
        errors: impl Fn(&[String]) -> Vec<(String, &'static str)> + Send + Sync + 'static,
    ) -> (Client, Arc<Mutex<Vec<Vec<String>>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        let http = infallible_client_fn(move |request: http::Request<SdkBody>| {
            let body = std::str::from_utf8(request.body().bytes().unwrap()).unwrap();
            assert!(body.ends_with("<Quiet>true</Quiet></Delete>"), "{body}");
            let between = |text: &str, tag: &str| {
                let rest = text.split_once(&format!("<{tag}>"))?.1;
                Some(rest.split_once(&format!("</{tag}>"))?.0.to_owned())
            };
            let sent: Vec<String> = body
                .split("<Object>")
                .skip(1)
                .map(|object| {
                    let key = between(object, "Key").unwrap();
                    match between(object, "VersionId") {
                        Some(version) => format!("{key}@{version}"),
                        None => key,
                    }
                })
                .collect();
            let answer: String = errors(&sent)
                .iter()
                .map(|(entry, code)| {
                    let named = match entry.split_once('@') {
                        Some((key, version)) => {
                            format!("<Key>{key}</Key><VersionId>{version}</VersionId>")
                        }
                        None => format!("<Key>{entry}</Key>"),
                    };
                    format!("<Error>{named}<Code>{code}</Code><Message>injected</Message></Error>")
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
    async fn a_transient_error_on_one_version_retries_that_version_alone() {
        // GIVEN S3 answers InternalError for version b of k/0 in the first call only
        let (client, calls) = s3_erring(|sent| match sent {
            [_, _, ..] => vec![("k/0@b".into(), "InternalError")],
            _ => Vec::new(),
        });
        // WHEN two versions of k/0 and one of k/1 are deleted
        let result = S3ObjectStore::new(client, "b", 4)
            .delete_versions(&versions(&["k/0@a", "k/0@b", "k/1@a"]), deadline())
            .await;
        // THEN only that version is sent again, and every version is deleted
        assert!(result.failed.is_empty() && result.error.is_none());
        assert_eq!(
            *calls.lock().unwrap(),
            [vec!["k/0@a", "k/0@b", "k/1@a"], vec!["k/0@b"]]
        );
        assert_eq!((result.retries, result.item_errors), (1, 1));
    }

    #[tokio::test]
    async fn a_refused_version_fails_alone_and_an_error_naming_only_its_key_fails_every_version_of_it()
     {
        // GIVEN S3 refuses version a of k/1, and answers an error naming only the key k/0
        let (client, calls) = s3_erring(|_| {
            vec![
                ("k/1@a".into(), "AccessDenied"),
                ("k/0".into(), "AccessDenied"),
            ]
        });
        // WHEN versions of k/0, k/1 and k/2 are deleted
        let result = S3ObjectStore::new(client, "b", 4)
            .delete_versions(
                &versions(&["k/0@a", "k/0@b", "k/1@a", "k/1@b", "k/2@a"]),
                deadline(),
            )
            .await;
        // THEN one call; both versions of k/0 and version a of k/1 failed, not retried
        assert_eq!(calls.lock().unwrap().len(), 1);
        assert_eq!(result.failed, versions(&["k/0@a", "k/0@b", "k/1@a"]));
        assert_eq!(result.error.unwrap().kind(), StoreErrorKind::Failed);
        assert_eq!((result.retries, result.item_errors), (0, 2));
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
