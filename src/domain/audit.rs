//! The audit trail: which images were deleted, restored or erased, by whom, for which
//! request. Its events are derived from the trash table's change stream, never sent by
//! the request that made the change: once a request has answered, its changes are in
//! the stream and their events follow, whatever becomes of the function after that.
//! One event holds the ids of one album changed the same way by one request.

use foldhash::HashMap;

use super::ids::{AlbumId, ImageId};
use super::trash::{Actor, RequestId, UnixTime};

/// What happened to the images of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Into the trash (by a request, a cleanup trigger, or adopted by the stream).
    Deleted,
    /// Out of the trash, an image again.
    Restored,
    /// Gone for good: erased by a request, or purged when its window ended.
    Erased,
}

impl Action {
    /// The event's `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::Deleted => "ImagesDeleted",
            Self::Restored => "ImagesRestored",
            Self::Erased => "ImagesErased",
        }
    }
}

/// One image's change, as the trash table's stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub id: ImageId,
    pub album_id: AlbumId,
    pub by: Actor,
    pub request_id: RequestId,
    pub at: UnixTime,
}

/// One audit event: what one request (or trigger) did to images of one album.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub action: Action,
    pub album_id: AlbumId,
    /// In stream order, each once.
    pub ids: Vec<ImageId>,
    pub by: Actor,
    pub request_id: RequestId,
    /// When the first of them changed.
    pub at: UnixTime,
}

impl AuditEvent {
    /// At most this many ids per event: 250 ids of 36 bytes keep an event near 10 KB,
    /// so the 10 events of one `PutEvents` call stay far below its 256 KB limit.
    pub const MAX_IDS: usize = 250;
}

/// Groups changes, given in stream order with their position in the batch, into
/// events; each event comes with the position of its first change (where a retry
/// must start when it is not published). Events are in order of those positions.
pub fn group(changes: Vec<(usize, Change)>) -> Vec<(AuditEvent, usize)> {
    type Key = (Action, AlbumId, Actor, RequestId);
    let mut open: HashMap<Key, usize> = HashMap::default();
    let mut events: Vec<(AuditEvent, usize)> = Vec::new();
    for (position, change) in changes {
        let key = (
            change.action,
            change.album_id.clone(),
            change.by.clone(),
            change.request_id.clone(),
        );
        if let Some(&index) = open.get(&key) {
            let (event, _) = &mut events[index];
            if !event.ids.contains(&change.id) {
                event.ids.push(change.id);
            }
            if event.ids.len() == AuditEvent::MAX_IDS {
                open.remove(&key);
            }
            continue;
        }
        open.insert(key, events.len());
        events.push((
            AuditEvent {
                action: change.action,
                album_id: change.album_id,
                ids: vec![change.id],
                by: change.by,
                request_id: change.request_id,
                at: change.at,
            },
            position,
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trash::Trigger;

    fn change(action: Action, id: u8, album: &str, by: &str, request: &str) -> Change {
        Change {
            action,
            id: ImageId::parse(&format!("00000000-0000-4000-8000-0000000000{id:02}")).unwrap(),
            album_id: AlbumId::parse(album).unwrap(),
            by: Actor::User(by.into()),
            request_id: RequestId::new(request),
            at: UnixTime(i64::from(id)),
        }
    }

    fn summary(events: &[(AuditEvent, usize)]) -> Vec<(&'static str, &str, usize, usize)> {
        events
            .iter()
            .map(|(e, first)| {
                let kind = e.action.detail_type();
                (kind, e.album_id.as_str(), e.ids.len(), *first)
            })
            .collect()
    }

    #[test]
    fn changes_group_by_action_album_actor_and_request() {
        // GIVEN a stream batch: a delete over two albums, a restore, another user's
        // delete in the same request id, and a repeated change
        let changes = vec![
            change(Action::Deleted, 1, "a", "u", "r1"),
            change(Action::Deleted, 2, "b", "u", "r1"),
            change(Action::Deleted, 3, "a", "u", "r1"),
            change(Action::Restored, 1, "a", "v", "r2"),
            change(Action::Deleted, 4, "a", "w", "r1"),
            change(Action::Deleted, 3, "a", "u", "r1"),
        ];
        // WHEN they are grouped
        let events = group(changes.into_iter().enumerate().collect());
        // THEN one event per (action, album, actor, request), first position kept
        assert_eq!(
            summary(&events),
            [
                ("ImagesDeleted", "a", 2, 0),
                ("ImagesDeleted", "b", 1, 1),
                ("ImagesRestored", "a", 1, 3),
                ("ImagesDeleted", "a", 1, 4),
            ]
        );
        assert_eq!(events[0].0.at, UnixTime(1));
    }

    #[test]
    fn a_user_named_like_a_trigger_is_not_grouped_with_it() {
        let mut system = change(Action::Deleted, 1, "a", "x", "r");
        system.by = Actor::System(Trigger::Cleanup);
        let user = change(Action::Deleted, 2, "a", "system:cleanup", "r");
        let events = group(vec![(0, system), (1, user)]);
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn a_full_event_is_closed_and_the_next_change_opens_another() {
        // GIVEN more changes of one request and album than an event holds
        let n = AuditEvent::MAX_IDS + 1;
        let changes = (0..n).map(|i| {
            let mut c = change(Action::Erased, 0, "a", "u", "r");
            c.id = ImageId::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap();
            (i, c)
        });
        // WHEN they are grouped
        let events = group(changes.collect());
        // THEN the first event is full and the last id starts the second
        assert_eq!(
            summary(&events),
            [
                ("ImagesErased", "a", AuditEvent::MAX_IDS, 0),
                ("ImagesErased", "a", 1, AuditEvent::MAX_IDS),
            ]
        );
    }
}
