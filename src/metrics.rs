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
    /// The EMF document for these counters, dimensioned by `trigger`.
    pub fn to_emf(&self, trigger: &str, timestamp_ms: u64) -> serde_json::Value {
        let values: [(&str, u64); 6] = [
            ("ImagesDeleted", self.images_deleted),
            ("ObjectsDeleted", self.objects_deleted),
            ("DeniedRequests", self.denied_requests),
            ("UnprocessedRetries", self.unprocessed_retries),
            ("S3KeyErrors", self.s3_key_errors),
            ("FailedMessages", self.failed_messages),
        ];
        let definitions: Vec<serde_json::Value> = values
            .iter()
            .map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"}))
            .collect();
        let mut document = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Trigger"]],
                    "Metrics": definitions,
                }]
            },
            "Trigger": trigger,
        });
        for (name, value) in values {
            document[name] = value.into();
        }
        document
    }

    /// Writes the EMF line to stdout (where the Lambda runtime ships it to CloudWatch).
    pub fn emit(&self, trigger: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let line = self.to_emf(trigger, now).to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
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
    }
}
