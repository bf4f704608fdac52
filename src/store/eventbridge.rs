//! The audit log on EventBridge: each `AuditEvent` becomes one event on the project's
//! bus (`source` `image-delete`, `detail-type` `ImagesDeleted` / `ImagesRestored` /
//! `ImagesErased`), which the template archives for a year. Detail shape:
//! `docs/trash.md`, Audit events.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::send_before;
use crate::domain::audit::AuditEvent;
use crate::domain::trash::Actor;
use crate::ports::{AuditLog, Partial, StoreError, StoreErrorKind};
use crate::retry::Deadline;

/// The `source` of every audit event.
pub const AUDIT_SOURCE: &str = "image-delete";

/// `PutEvents` takes at most 10 entries per call.
const MAX_PUT_EVENTS: usize = 10;

/// Audit events on an EventBridge bus.
pub struct BridgeAuditLog {
    client: Client,
    bus: String,
}

impl BridgeAuditLog {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &AuditEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(AUDIT_SOURCE)
            .detail_type(event.action.detail_type())
            .detail(detail(event).to_string())
            .build()
    }

    /// One call: the positions (within `events`) of the entries not put.
    async fn put(&self, events: &[AuditEvent], deadline: Deadline) -> Partial<usize> {
        const OP: &str = "EventBridge PutEvents";
        let entries = events.iter().map(|e| self.entry(e)).collect();
        let sent = self.client.put_events().set_entries(Some(entries)).send();
        let mut result = Partial::default();
        match send_before(deadline, OP, sent).await {
            Err(err) => {
                result.failed.extend(0..events.len());
                result.error = Some(err);
            }
            Ok(output) => {
                // One answer entry per request entry, in order; a refused one has a code.
                let answers = output.entries();
                for position in 0..events.len() {
                    let answer = answers.get(position);
                    if answer.is_none_or(|a| a.error_code().is_some()) {
                        result.failed.push(position);
                        result.item_errors += 1;
                        let code = answer
                            .and_then(|a| a.error_code())
                            .unwrap_or("no answer")
                            .to_owned();
                        let err = StoreError::new(StoreErrorKind::Failed, OP).with_source(code);
                        result.error = StoreError::worst(result.error, Some(err));
                    }
                }
            }
        }
        result
    }
}

/// The event's detail: the album, its ids, who and which request, when (Unix seconds).
pub fn detail(event: &AuditEvent) -> serde_json::Value {
    let kind = match event.by {
        Actor::User(_) => "user",
        Actor::System(_) => "system",
    };
    serde_json::json!({
        "album_id": event.album_id.as_str(),
        "image_ids": event.ids.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
        "user": event.by.to_string(),
        "user_kind": kind,
        "request_id": event.request_id.as_str(),
        "time": event.at.0,
    })
}

#[async_trait]
impl AuditLog for BridgeAuditLog {
    async fn publish(&self, events: &[AuditEvent], deadline: Deadline) -> Partial<usize> {
        let mut all = Partial::default();
        // In order, one call at a time: a stream batch holds a few events at most.
        for (chunk, events) in events.chunks(MAX_PUT_EVENTS).enumerate() {
            let part = self.put(events, deadline).await;
            let offset = chunk * MAX_PUT_EVENTS;
            all.failed
                .extend(part.failed.iter().map(|position| position + offset));
            all.error = StoreError::worst(all.error, part.error);
            all.item_errors += part.item_errors;
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Action;
    use crate::domain::trash::{RequestId, Trigger, UnixTime};
    use crate::domain::{AlbumId, ImageId};
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn event(album: &str) -> AuditEvent {
        AuditEvent {
            action: Action::Restored,
            album_id: AlbumId::parse(album).unwrap(),
            ids: vec![ImageId::parse("7dca41d5-d76a-4ebb-9e00-dd13c13fc238").unwrap()],
            by: Actor::System(Trigger::Cleanup),
            request_id: RequestId::new("req"),
            at: UnixTime(100),
        }
    }

    #[test]
    fn the_detail_names_album_ids_user_request_and_time() {
        assert_eq!(
            detail(&event("a")),
            serde_json::json!({
                "album_id": "a",
                "image_ids": ["7dca41d5-d76a-4ebb-9e00-dd13c13fc238"],
                "user": "system:cleanup",
                "user_kind": "system",
                "request_id": "req",
                "time": 100,
            })
        );
    }

    #[tokio::test]
    async fn events_go_ten_a_call_and_a_refused_entry_fails_only_itself() {
        // GIVEN a bus that refuses the second entry of each call
        let answer = mock!(Client::put_events).then_output(|| {
            let ok = PutEventsResultEntry::builder().event_id("e").build();
            let refused = PutEventsResultEntry::builder()
                .error_code("InternalFailure")
                .build();
            let mut entries = vec![ok.clone(), refused];
            entries.extend(std::iter::repeat_n(ok, 8));
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .set_entries(Some(entries))
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&answer]);
        let log = BridgeAuditLog::new(client, "bus");
        // WHEN 20 events are published
        let events: Vec<AuditEvent> = (0..20).map(|_| event("a")).collect();
        let deadline = Deadline::after(std::time::Duration::from_secs(5));
        let result = log.publish(&events, deadline).await;
        // THEN two calls were made and the second entry of each failed
        assert_eq!(answer.num_calls(), 2);
        assert_eq!(result.failed, [1, 11]);
        assert!(result.error.is_some());
    }
}
