//! CloudWatch metrics in the Embedded Metric Format: one JSON line on stdout per
//! invocation, turned into metrics by CloudWatch Logs with no API call and no agent.

use std::io::Write;
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
}

impl Metrics {
    fn values(&self) -> [(&'static str, u64); 6] {
        [
            ("ImagesDeleted", self.images_deleted),
            ("ObjectsDeleted", self.objects_deleted),
            ("DeniedRequests", self.denied_requests),
            ("UnprocessedRetries", self.unprocessed_retries),
            ("S3KeyErrors", self.s3_key_errors),
            ("FailedMessages", self.failed_messages),
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

    /// Writes the EMF line to stdout (where the Lambda runtime ships it to CloudWatch).
    pub fn emit(&self, trigger: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut line = self.to_emf_line(trigger, now);
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
}
