//! `BatchGetItem` answers read straight into image records.
//!
//! The SDK turns every record of an answer into a map of `AttributeValue`s, and the
//! adapter then reads three of them: that was 13 % of a 1000-id request's CPU time
//! (perf, bench/README.md). [`RecordReader`] reads a successful answer's records
//! itself, by the same rules (`dynamodb::record_from`), and hands the SDK the rest of
//! the answer, `UnprocessedKeys` included, to read as before.
//!
//! It reads a strict subset of what the SDK accepts: records whose attributes are
//! exactly the projected three, typed `S`, `S` and `SS` or `NULL`. Any other answer
//! (an error, an unexpected shape, a value of another type) is left to the SDK
//! untouched, and the adapter reads the SDK's output as it always did; a 200 answer
//! left so is counted (`metrics::READER_FALLBACKS`, metric `ReaderFallbacks`). The HTTP client
//! hands over answers in memory (`aws::https`); a streamed body is left alone too.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{ATTR_ALBUM_ID, ATTR_ID, ATTR_OBJECT_KEYS, ObjectKeys, Parsed, record_from};

/// One call's interceptor: reads the records of `table` out of a successful answer.
/// Made per call; [`RecordReader::take`] gives what the last answer held.
#[derive(Clone, Debug)]
pub(crate) struct RecordReader {
    table: Arc<str>,
    read: Arc<Mutex<Option<Vec<Parsed>>>>,
}

impl RecordReader {
    pub(crate) fn new(table: Arc<str>) -> Self {
        Self {
            table,
            read: Arc::default(),
        }
    }

    /// The records of the answer the SDK returned, if this reader read them; `None`
    /// means the SDK's output holds them.
    pub(crate) fn take(&self) -> Option<Vec<Parsed>> {
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Intercept for RecordReader {
    fn name(&self) -> &'static str {
        "RecordReader"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        // Each attempt starts afresh: only the answer the SDK returns counts.
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        *read = None;
        if response.status().as_u16() != 200 {
            return Ok(());
        }
        let Some((records, rest)) = response.body().bytes().and_then(|b| split(b, &self.table))
        else {
            crate::metrics::READER_FALLBACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        };
        *response.body_mut() = SdkBody::from(rest);
        *read = Some(records);
        Ok(())
    }
}

/// A `BatchGetItem` answer's records of `table`, and the answer without its
/// `Responses` (for the SDK); `None` when it is not of the subset read here.
pub(crate) fn split(body: &[u8], table: &str) -> Option<(Vec<Parsed>, String)> {
    // UTF-8 checked once for the whole answer: read from bytes, serde_json checks each
    // string on its own (ten a record), which took twice the instructions.
    let body = std::str::from_utf8(body).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let answer = deserializer.deserialize_map(AnswerVisitor { table }).ok()?;
    deserializer.end().ok()?;
    Some(answer)
}

/// Reads the answer in one pass: `Responses` into records, every other field kept
/// as it is for the SDK.
struct AnswerVisitor<'t> {
    table: &'t str,
}

impl<'de> Visitor<'de> for AnswerVisitor<'_> {
    type Value = (Vec<Parsed>, String);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a BatchGetItem answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        let mut rest = String::with_capacity(64);
        rest.push('{');
        while let Some(name) = map.next_key::<Text>()? {
            if &*name == "Responses" {
                if records.is_some() {
                    return Err(de::Error::custom("Responses twice"));
                }
                let tables = map.next_value_seed(TablesSeed(self.table))?;
                records = Some(tables.unwrap_or_default());
            } else {
                let value: &RawValue = map.next_value()?;
                if rest.len() > 1 {
                    rest.push(',');
                }
                rest.push_str(&serde_json::to_string(&*name).map_err(de::Error::custom)?);
                rest.push(':');
                rest.push_str(value.get());
            }
        }
        rest.push('}');
        Ok((records.unwrap_or_default(), rest))
    }
}

/// Reads `Responses` (`null` reads as `None`) into the records of the table named:
/// other tables are never asked for, so their records, read by the same rules, are
/// dropped.
struct TablesSeed<'t>(&'t str);

impl<'de> de::DeserializeSeed<'de> for TablesSeed<'_> {
    type Value = Option<Vec<Parsed>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for TablesSeed<'_> {
    type Value = Option<Vec<Parsed>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("records by table")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        while let Some(table) = map.next_key::<Text>()? {
            let items: Vec<Item> = map.next_value()?;
            // As the SDK's map: a table named twice keeps its last list.
            if &*table == self.0 {
                records = items.into_iter().map(Item::into_record).collect();
            }
        }
        Ok(Some(records))
    }
}

/// A string of the answer: borrowed from it unless it holds escapes.
struct Text<'de>(Cow<'de, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// One record's three attributes as the answer has them.
#[derive(Default)]
struct Item<'de> {
    id: Option<Attr<'de>>,
    album_id: Option<Attr<'de>>,
    object_keys: Option<Attr<'de>>,
}

impl Item<'_> {
    fn into_record(self) -> Parsed {
        fn text<'a>(attr: &'a Option<Attr>) -> Option<&'a str> {
            match attr {
                Some(Attr::S(s)) => Some(s),
                _ => None,
            }
        }
        let keys = match &self.object_keys {
            None | Some(Attr::Null) => ObjectKeys::None,
            Some(Attr::Ss(set)) => ObjectKeys::Set(set.as_slice()),
            Some(Attr::S(_)) => ObjectKeys::OtherType,
        };
        record_from(text(&self.id), text(&self.album_id), keys)
    }
}

/// An attribute value of a type read here; any other type is not of the subset.
enum Attr<'de> {
    S(Text<'de>),
    Ss(Vec<Text<'de>>),
    Null,
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record of the three projected attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut item = Item::default();
                while let Some(name) = map.next_key::<Text>()? {
                    let slot = match &*name {
                        ATTR_ID => &mut item.id,
                        ATTR_ALBUM_ID => &mut item.album_id,
                        ATTR_OBJECT_KEYS => &mut item.object_keys,
                        _ => return Err(de::Error::custom("an attribute not projected")),
                    };
                    if slot.replace(map.next_value()?).is_some() {
                        return Err(de::Error::custom("an attribute twice"));
                    }
                }
                Ok(item)
            }
        }
        deserializer.deserialize_map(ItemVisitor)
    }
}

impl<'de> Deserialize<'de> for Attr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttrVisitor;
        impl<'de> Visitor<'de> for AttrVisitor {
            type Value = Attr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute value of type S, SS or NULL")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let tag = map.next_key::<Text>()?;
                let attr = match tag.as_deref() {
                    Some("S") => Attr::S(map.next_value()?),
                    Some("SS") => Attr::Ss(map.next_value()?),
                    Some("NULL") => {
                        map.next_value::<bool>()?;
                        Attr::Null
                    }
                    _ => return Err(de::Error::custom("another type")),
                };
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("a value of two types"));
                }
                Ok(attr)
            }
        }
        deserializer.deserialize_map(AttrVisitor)
    }
}

#[cfg(test)]
mod tests {
    //! The reader against the SDK: for every answer of the subset, the same records
    //! and the same unprocessed keys as the SDK's output read by `parse_record`; any
    //! other answer is left to the SDK.
    use super::*;
    use crate::metrics::READER_FALLBACKS;
    use crate::store::dynamodb::tests::sdk_parse;
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;

    const TABLE: &str = "images";

    /// An answer's body as DynamoDB sends it, through the SDK with `reader` (if any).
    async fn through_sdk(
        body: String,
        status: u16,
        reader: Option<RecordReader>,
    ) -> BatchGetItemOutput {
        let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_http_response(move || {
            HttpResponse::new(
                StatusCode::try_from(status).unwrap(),
                SdkBody::from(body.clone()),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let call = client.batch_get_item().request_items(
            TABLE,
            aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .keys(HashMap::from([(
                    "id".to_owned(),
                    aws_sdk_dynamodb::types::AttributeValue::S("k".into()),
                )]))
                .build()
                .unwrap(),
        );
        match reader {
            Some(reader) => call.customize().interceptor(reader).send().await,
            None => call.send().await,
        }
        .expect("the SDK reads the answer")
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A JSON string for `text`: minimally escaped, or with every character but
    /// letters and digits as `\u` escapes (surrogate pairs beyond the BMP).
    fn json_string(text: &str, escape_all: bool) -> String {
        if !escape_all {
            return serde_json::to_string(text).unwrap();
        }
        let mut out = String::from("\"");
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out.push('"');
        out
    }

    /// An attribute as generated: its JSON, and whether it is of the subset.
    #[derive(Debug, Clone)]
    enum Gen {
        S(String),
        Ss(Vec<String>),
        Null(bool),
        /// A number: the SDK reads it, the reader does not.
        N(u32),
    }

    impl Gen {
        fn json(&self, escape_all: bool) -> String {
            match self {
                Gen::S(s) => format!(r#"{{"S":{}}}"#, json_string(s, escape_all)),
                Gen::Ss(v) => {
                    let items: Vec<String> = v.iter().map(|s| json_string(s, escape_all)).collect();
                    format!(r#"{{"SS":[{}]}}"#, items.join(","))
                }
                Gen::Null(b) => format!(r#"{{"NULL":{b}}}"#),
                Gen::N(n) => format!(r#"{{"N":"{n}"}}"#),
            }
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::array::uniform16(any::<u8>())
                .prop_map(|b| uuid::Uuid::from_bytes(b).hyphenated().to_string()),
            1 => proptest::array::uniform16(any::<u8>())
                .prop_map(|b| uuid::Uuid::from_bytes(b).hyphenated().to_string().to_uppercase()),
            2 => "[ -~]{0,40}",
            1 => "\\PC{0,12}",
            1 => "[\\x00-\\x1f\u{7f}\u{e9}\u{1F600}]{1,4}",
            1 => Just(String::new()),
            1 => "a{1025,1030}",
        ]
    }

    fn attr() -> impl Strategy<Value = Option<Gen>> {
        prop_oneof![
            6 => text().prop_map(|s| Some(Gen::S(s))),
            2 => proptest::collection::vec(text(), 0..4).prop_map(|v| Some(Gen::Ss(v))),
            1 => any::<bool>().prop_map(|b| Some(Gen::Null(b))),
            1 => Just(None),
            1 => any::<u32>().prop_map(|n| Some(Gen::N(n))),
        ]
    }

    /// A record: its three attributes, and possibly one that is not projected.
    fn record() -> impl Strategy<Value = (Vec<(&'static str, Gen)>, bool)> {
        (attr(), attr(), attr(), 0..20u8).prop_map(|(id, album, keys, extra)| {
            let mut attrs: Vec<(&'static str, Gen)> = [
                (ATTR_ID, id),
                (ATTR_ALBUM_ID, album),
                (ATTR_OBJECT_KEYS, keys),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v)))
            .collect();
            if extra == 0 {
                attrs.push(("size", Gen::N(7)));
            }
            let subset = extra != 0 && attrs.iter().all(|(_, v)| !matches!(v, Gen::N(_)));
            (attrs, subset)
        })
    }

    fn answer() -> impl Strategy<Value = (String, bool)> {
        (
            proptest::collection::vec((record(), any::<bool>()), 0..12),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(records, unprocessed, capacity, other_table)| {
                let mut subset = true;
                let items: Vec<String> = records
                    .iter()
                    .map(|((attrs, in_subset), escape_all)| {
                        subset &= in_subset;
                        let fields: Vec<String> = attrs
                            .iter()
                            .map(|(name, v)| format!(r#""{name}":{}"#, v.json(*escape_all)))
                            .collect();
                        format!("{{{}}}", fields.join(","))
                    })
                    .collect();
                let mut tables = vec![format!(r#""{TABLE}":[{}]"#, items.join(","))];
                if other_table {
                    tables.push(r#""other":[{"id":{"S":"x"}}]"#.to_owned());
                }
                let mut body = format!(r#"{{"Responses":{{{}}}"#, tables.join(","));
                if unprocessed {
                    body.push_str(&format!(
                        r#","UnprocessedKeys":{{"{TABLE}":{{"Keys":[{{"id":{{"S":"a\"b"}}}},{{"id":{{"S":"{}"}}}}],"ConsistentRead":true}}}}"#,
                        "0c5f3e4e-0000-4000-8000-000000000001"
                    ));
                }
                if capacity {
                    body.push_str(r#","ConsumedCapacity":[{"TableName":"images","CapacityUnits":1.5}]"#);
                }
                body.push('}');
                (body, subset)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]

        #[test]
        fn the_reader_reads_what_the_sdk_reads((body, subset) in answer()) {
            // GIVEN an answer, read by the SDK alone and then by parse_record
            let sdk = run(through_sdk(body.clone(), 200, None));
            let expected = sdk_parse(&sdk, TABLE);
            // WHEN the reader reads it
            let reader = RecordReader::new(TABLE.into());
            let fallbacks = READER_FALLBACKS.load(Ordering::Relaxed);
            let through_reader = run(through_sdk(body.clone(), 200, Some(reader.clone())));
            let read = reader.take();
            // THEN an answer of the subset is read by the reader, with the same records
            // and unprocessed keys; any other answer is the SDK's, untouched, and
            // counted as a fallback for the metrics
            prop_assert_eq!(read.is_some(), subset, "{}", body);
            let counted = READER_FALLBACKS.load(Ordering::Relaxed) - fallbacks;
            prop_assert_eq!(counted, u64::from(!subset));
            let records = read.unwrap_or_else(|| sdk_parse(&through_reader, TABLE));
            prop_assert_eq!(records, expected);
            prop_assert_eq!(through_reader.unprocessed_keys(), sdk.unprocessed_keys());
            prop_assert_eq!(through_reader.consumed_capacity(), sdk.consumed_capacity());
            if subset {
                // the SDK was handed the answer without its records
                prop_assert!(through_reader.responses().is_none());
            }
        }
    }

    #[test]
    fn error_answers_and_other_shapes_are_left_to_the_sdk() {
        let reader = RecordReader::new(TABLE.into());
        // GIVEN an error answer WHEN the SDK reads it THEN the reader read nothing
        let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"no"}"#),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let sent = run(client
            .batch_get_item()
            .request_items(
                TABLE,
                aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .keys(HashMap::from([(
                        "id".to_owned(),
                        aws_sdk_dynamodb::types::AttributeValue::S("k".into()),
                    )]))
                    .build()
                    .unwrap(),
            )
            .customize()
            .interceptor(reader.clone())
            .send());
        assert!(sent.is_err());
        assert!(reader.take().is_none());
        // AND an error answer is no fallback: the SDK reads errors either way
        assert_eq!(READER_FALLBACKS.load(Ordering::Relaxed), 0);
        // GIVEN answers outside the subset THEN split leaves them alone
        for body in [
            "",
            "[]",
            r#"{"Responses":{"images":[{"id":{"S":"x","N":"1"}}]}}"#,
            r#"{"Responses":{"images":[{"id":{}}]}}"#,
            r#"{"Responses":{"images":[{"id":{"S":"x"},"id":{"S":"y"}}]}}"#,
            r#"{"Responses":{"images":[{"id":{"NULL":"yes"}}]}}"#,
            r#"{"Responses":{"images":[{"id":{"S":"x"}}]}} trailing"#,
        ] {
            assert!(split(body.as_bytes(), TABLE).is_none(), "{body}");
        }
    }
}
