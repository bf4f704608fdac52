//! CloudWatch metrics in the Embedded Metric Format: one JSON line on stdout per
//! invocation, turned into metrics by CloudWatch Logs with no API call and no agent.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The namespace every metric of this service is published under.
pub const NAMESPACE: &str = "ImageDelete";

/// Counters of one invocation of one trigger.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub images_deleted: u64,
    pub objects_deleted: u64,
    pub denied_requests: u64,
    pub unprocessed_retries: u64,
    pub s3_key_errors: u64,
    pub failed_messages: u64,
    /// `BatchGetItem` answers of status 200 that the record reader left to the SDK's
    /// deserializer (`store::dynamodb::records`): taken from [`READER_FALLBACKS`].
    pub reader_fallbacks: u64,
}

/// Successful `BatchGetItem` answers the record reader could not read and left to the
/// SDK, counted process-wide until the next invocation's metrics take them. Never 0 in
/// production means the fast path has stopped applying (say, an SDK upgrade changed
/// what it is handed) and the function runs on the SDK's slower path.
pub static READER_FALLBACKS: AtomicU64 = AtomicU64::new(0);

impl Metrics {
    fn values(&self) -> [(&'static str, u64); 7] {
        [
            ("ImagesDeleted", self.images_deleted),
            ("ObjectsDeleted", self.objects_deleted),
            ("DeniedRequests", self.denied_requests),
            ("UnprocessedRetries", self.unprocessed_retries),
            ("S3KeyErrors", self.s3_key_errors),
            ("FailedMessages", self.failed_messages),
            ("ReaderFallbacks", self.reader_fallbacks),
        ]
    }

    /// The EMF line for these counters, dimensioned by `trigger`: written directly
    /// rather than through a `serde_json::Value` (a quarter of the instructions; this
    /// runs once per request).
    pub fn to_emf_line(&self, trigger: &str, timestamp_ms: u64) -> String {
        use std::fmt::Write as _;
        let values = self.values();
        let mut line = String::with_capacity(512);
        let _ = write!(
            line,
            r#"{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":[{{"Namespace":"{NAMESPACE}","Dimensions":[["Trigger"]],"Metrics":["#
        );
        for (i, (name, _)) in values.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(line, r#"{comma}{{"Name":"{name}","Unit":"Count"}}"#);
        }
        // The trigger is one of this crate's names; escaped all the same.
        let trigger = serde_json::to_string(trigger).unwrap_or_else(|_| "\"\"".into());
        let _ = write!(line, r#"]}}]}},"Trigger":{trigger}"#);
        for (name, value) in values {
            let _ = write!(line, r#","{name}":{value}"#);
        }
        line.push('}');
        line
    }

    /// The EMF document of `to_emf_line`, parsed.
    pub fn to_emf(&self, trigger: &str, timestamp_ms: u64) -> serde_json::Value {
        serde_json::from_str(&self.to_emf_line(trigger, timestamp_ms)).unwrap_or_default()
    }

    /// These counters and the process-wide ones counted since the last take
    /// ([`READER_FALLBACKS`]), which are reset.
    pub fn with_fallbacks(mut self) -> Self {
        self.reader_fallbacks += READER_FALLBACKS.swap(0, Ordering::Relaxed);
        self
    }

    /// Writes the EMF line to stdout (where the Lambda runtime ships it to CloudWatch),
    /// with the fallbacks counted since the last line ([`Metrics::with_fallbacks`]).
    pub fn emit(&self, trigger: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut line = self.clone().with_fallbacks().to_emf_line(trigger, now);
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_every_metric_and_its_value() {
        let metrics = Metrics {
            images_deleted: 9,
            objects_deleted: 18,
            ..Metrics::default()
        };
        let doc = metrics.to_emf("http", 1_700_000_000_000);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], serde_json::json!([["Trigger"]]));
        for definition in declared["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            assert!(doc[name].is_u64(), "{name} has a value");
        }
        assert_eq!(doc["ImagesDeleted"], 9);
        assert_eq!(doc["ObjectsDeleted"], 18);
        assert_eq!(doc["Trigger"], "http");
        // AND the line is one JSON object on one line, the trigger escaped
        let odd = metrics.to_emf_line("a\"b\nc", 1);
        assert!(!odd.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&odd).unwrap();
        assert_eq!(parsed["Trigger"], "a\"b\nc");
    }

    #[test]
    fn fallbacks_are_reported_once_by_the_next_line() {
        // GIVEN two answers left to the SDK since the last line (nextest runs each
        // test in a process of its own: the counter is this test's)
        READER_FALLBACKS.fetch_add(2, Ordering::Relaxed);
        // WHEN the next invocation's counters are completed, then the one after's
        let first = Metrics::default().with_fallbacks();
        let second = Metrics::default().with_fallbacks();
        // THEN the first reports both, the second none
        assert_eq!(first.to_emf("http", 1)["ReaderFallbacks"], 2);
        assert_eq!(second.reader_fallbacks, 0);
    }
}
