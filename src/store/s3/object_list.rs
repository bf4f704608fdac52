//! `DeleteObjects` bodies with their keys written here rather than by the SDK.
//!
//! The SDK's XML writer escapes every key through a nine-character pattern search: 5 M
//! instructions for a 1000-key call (callgrind), about a millisecond of CPU spent
//! between the last read answer and the S3 call, on the request's critical path.
//! [`ObjectList`] writes the same bytes itself: the adapter has the SDK serialize the
//! call with no objects, and this per-call interceptor puts the keys in, escaped as
//! the SDK escapes them, before the retry loop (so before the checksum, the payload
//! hash and the signature are worked out), and sets `Content-Length` to match.
//!
//! Fail-safe: sent with no objects, the call would delete nothing and S3 would answer
//! with no error, as if every key were gone. So the adapter believes an answer only
//! when this interceptor says it wrote that call's keys (`ObjectList::written`), and
//! the interceptor fails the call rather than touch a body of a shape it does not know.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

use crate::domain::ObjectKey;

/// Where the objects go in the SDK's body of a quiet delete with none.
const AFTER_OBJECTS: &str = "<Quiet>true</Quiet></Delete>";
/// What the SDK writes around each key.
const OBJECT_OPEN: &str = "<Object><Key>";
const OBJECT_CLOSE: &str = "</Key></Object>";

/// One call's interceptor: writes `keys` into the body of a quiet `DeleteObjects`
/// that the SDK serialized with no objects.
#[derive(Debug, Clone)]
pub(crate) struct ObjectList {
    keys: Arc<Vec<ObjectKey>>,
    written: Arc<AtomicBool>,
}

impl ObjectList {
    pub(crate) fn new(keys: Arc<Vec<ObjectKey>>) -> Self {
        Self {
            keys,
            written: Arc::default(),
        }
    }

    /// Whether the body sent holds the keys (else it held none).
    pub(crate) fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }
}

impl Intercept for ObjectList {
    fn name(&self) -> &'static str {
        "ObjectList"
    }

    fn modify_before_retry_loop(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let body = request
            .body()
            .bytes()
            .and_then(|empty| with_keys(empty, &self.keys))
            .ok_or("DeleteObjects body not of the expected shape")?;
        request
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, body.len().to_string());
        *request.body_mut() = SdkBody::from(body);
        self.written.store(true, Ordering::Release);
        Ok(())
    }
}

/// `empty` (the SDK's body of a quiet delete of no objects) with `keys` as its
/// objects, in order; `None` if `empty` is not such a body.
pub(crate) fn with_keys(empty: &[u8], keys: &[ObjectKey]) -> Option<Vec<u8>> {
    let empty = std::str::from_utf8(empty).ok()?;
    let head = empty.strip_suffix(AFTER_OBJECTS)?;
    if !head.ends_with('>') || !head.contains("<Delete") || head.contains("<Object>") {
        return None;
    }
    let frame = OBJECT_OPEN.len() + OBJECT_CLOSE.len();
    let size: usize = keys.iter().map(|k| k.as_str().len() + frame).sum();
    let mut out = String::with_capacity(empty.len() + size);
    out.push_str(head);
    for key in keys {
        out.push_str(OBJECT_OPEN);
        escape_into(&mut out, key.as_str());
        out.push_str(OBJECT_CLOSE);
    }
    out.push_str(AFTER_OBJECTS);
    Some(out.into_bytes())
}

/// Escapes text as the SDK's XML writer does (`aws_smithy_xml::escape`): the five
/// markup characters by name; CR, LF, NEL and LINE SEPARATOR as hex references. A
/// byte scan: all but the last two are ASCII, and those two start with 0xC2 / 0xE2.
fn escape_into(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        if !MAY_ESCAPE[usize::from(bytes[at])] {
            at += 1;
            continue;
        }
        let (entity, len) = match bytes[at] {
            b'&' => ("&amp;", 1),
            b'\'' => ("&apos;", 1),
            b'"' => ("&quot;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'\r' => ("&#xD;", 1),
            b'\n' => ("&#xA;", 1),
            0xC2 if bytes[at + 1..].starts_with(&[0x85]) => ("&#x85;", 2),
            0xE2 if bytes[at + 1..].starts_with(&[0x80, 0xA8]) => ("&#x2028;", 3),
            _ => {
                at += 1;
                continue;
            }
        };
        out.push_str(&text[start..at]);
        out.push_str(entity);
        at += len;
        start = at;
    }
    out.push_str(&text[start..]);
}

/// The bytes that may start something to escape (see `escape_into`).
static MAY_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    let bytes = b"&'\"<>\r\n\xC2\xE2";
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    //! The object list against the SDK's own XML writer: the same bytes on the wire,
    //! for the function's calls and for generated keys full of characters to escape.

    use super::*;
    use crate::aws::https;
    use crate::aws::https::tests::{ROOTS, Serve, Server, masked, s3};
    use crate::ports::ObjectStore;
    use crate::retry::Deadline;
    use crate::store::s3::S3ObjectStore;
    use crate::store::test_calls::object_deletes_of;
    use proptest::prelude::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_adapters_deletes_go_on_the_wire_byte_for_byte_as_the_sdk_writes_them() {
        // GIVEN 1000 keys, a quarter plain, the rest with characters the SDK escapes
        let keys: Vec<String> = (0..1000)
            .map(|i| match i % 4 {
                0 => format!("albums/a/{i}.jpg"),
                1 => format!("a&b<c>'\"\r\n/{i}"),
                2 => format!("\u{85}日本\u{2028}é/{i}"),
                _ => format!("\u{2029}\u{84}\u{c2}x/{i}"),
            })
            .collect();
        let server = Server::start(Serve::Answer).await;
        let client = s3(https::client(&[ROOTS]).unwrap(), &server.url());
        // WHEN the SDK writes a DeleteObjects of them, and the adapter deletes them
        let _ = client
            .delete_objects()
            .bucket("images")
            .delete(object_deletes_of(&keys))
            .send()
            .await;
        let object_keys: Vec<ObjectKey> =
            keys.iter().map(|k| ObjectKey::parse(k).unwrap()).collect();
        let _ = S3ObjectStore::new(client, "images", 1)
            .delete(&object_keys, Deadline::after(Duration::from_secs(5)))
            .await;
        // THEN the server received the same bytes: headers (length, checksum and
        // signature included) and body
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(masked(&requests[1]), masked(&requests[0]));
    }

    /// The body the SDK writes for a quiet delete of `keys`.
    fn sdk_body(keys: &[String]) -> Vec<u8> {
        let (http, request) = aws_smithy_http_client::test_util::capture_request(None);
        let config = aws_sdk_s3::Config::builder()
            .with_test_defaults_v2()
            .http_client(http)
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = runtime.block_on(
            client
                .delete_objects()
                .bucket("b")
                .delete(object_deletes_of(keys))
                .send(),
        );
        request.expect_request().body().bytes().unwrap().to_vec()
    }

    fn key() -> impl Strategy<Value = String> {
        let chars = vec![
            'a', '/', ' ', '&', '<', '>', '\'', '"', '\r', '\n', '\t', '\u{0}', '\u{84}', '\u{85}',
            '\u{86}', '\u{c2}', '\u{2027}', '\u{2028}', '\u{2029}', 'é', '日', '😀',
        ];
        prop::collection::vec(prop::sample::select(chars), 1..24).prop_map(String::from_iter)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn keys_are_written_as_the_sdk_writes_them(keys in prop::collection::vec(key(), 0..12)) {
            let empty = sdk_body(&[]);
            let object_keys: Vec<ObjectKey> =
                keys.iter().map(|k| ObjectKey::parse(k).unwrap()).collect();
            let ours = with_keys(&empty, &object_keys).unwrap();
            let theirs = sdk_body(&keys);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn a_body_of_another_shape_is_refused() {
        let keys = vec![ObjectKey::parse("k").unwrap()];
        for body in [
            "",
            "<Quiet>true</Quiet></Delete>",
            "<Delete><Object><Key>x</Key></Object><Quiet>true</Quiet></Delete>",
            "<Delete><Quiet>false</Quiet></Delete>",
            "<Delete></Delete>",
        ] {
            assert_eq!(with_keys(body.as_bytes(), &keys), None, "{body}");
        }
    }
}
