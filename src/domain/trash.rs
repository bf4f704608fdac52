//! What the trash is made of: how long it keeps images, who put them there, and the
//! entry that holds a trashed image until it is restored, erased or purged. The
//! design, and why the trash works this way, is in `docs/trash.md`.

use std::fmt;
use std::num::NonZeroU16;

use super::ImageRecord;
use super::ids::{AlbumId, ObjectKey};

/// How many days a trashed image stays restorable; `None` where days are read means
/// no trash: deletion is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrashDays(NonZeroU16);

/// Why a number of days is not a [`TrashDays`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trash days must be a whole number from 0 (no trash) to {max}", max = TrashDays::MAX)]
pub struct InvalidTrashDays;

impl TrashDays {
    /// Ten years: beyond that a trash is an archive, and `purge_at` stays far from
    /// any overflow.
    pub const MAX: u16 = 3650;

    /// `"0"` means no trash (`None`).
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidTrashDays> {
        let days: u16 = raw.trim().parse().map_err(|_| InvalidTrashDays)?;
        if days > Self::MAX {
            return Err(InvalidTrashDays);
        }
        Ok(NonZeroU16::new(days).map(Self))
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }

    /// When an image trashed at `at` is purged.
    pub fn purge_at(self, at: UnixTime) -> UnixTime {
        UnixTime(at.0 + i64::from(self.get()) * 86_400)
    }
}

/// Seconds since the epoch: what DynamoDB's TTL reads, and what the listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

impl UnixTime {
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The part of the system that deletes on its own account (no token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A whole album deleted by the cleanup queue.
    Album,
    /// Images named by a cleanup event.
    Cleanup,
    /// A record removed from the images table by someone else, adopted by the stream
    /// trigger so that its objects stay tracked.
    Stream,
    /// The trash window: an entry purged by the table's TTL (audit trail only).
    Expiry,
    /// An entry removed by something other than this service (audit trail only).
    Outside,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Album => "album",
            Self::Cleanup => "cleanup",
            Self::Stream => "stream",
            Self::Expiry => "expiry",
            Self::Outside => "outside",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Album,
            Self::Cleanup,
            Self::Stream,
            Self::Expiry,
            Self::Outside,
        ]
        .into_iter()
        .find(|t| t.as_str() == raw)
    }
}

/// Who deleted an image: the audit trail's "by".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A token holder, by the token's `user_id`.
    User(String),
    System(Trigger),
}

impl fmt::Display for Actor {
    /// `user_id` as the token has it, or `system:<trigger>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => f.write_str(id),
            Self::System(trigger) => write!(f, "system:{}", trigger.as_str()),
        }
    }
}

/// The id of the invocation that did something (Lambda's request id), for the audit
/// trail. Bounded and printable: it is stored and logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub const MAX_LEN: usize = 128;

    /// Anything unusable becomes `"unknown"`: a request id never fails a request.
    pub fn new(raw: &str) -> Self {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.chars().all(|c| c.is_ascii_graphic());
        Self(if ok { raw } else { "unknown" }.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who deletes, for which request, when: what a trash entry records besides the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub by: Actor,
    pub request_id: RequestId,
    pub at: UnixTime,
}

/// A trashed image: the record exactly as it was, and who put it there when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry {
    pub record: ImageRecord,
    pub deleted_at: UnixTime,
    pub deleted_by: Actor,
    pub request_id: RequestId,
    /// After this the entry and the objects' old versions are purged (TTL, lifecycle).
    pub purge_at: UnixTime,
}

/// Where an entry sits in its album's listing, newest first: by deletion time, ties
/// by id. Written as `<deleted_at, 12 digits>_<id>` it sorts as a string the same
/// way: the listing index's range key, and the listing's page cursor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedAt {
    pub deleted_at: UnixTime,
    pub id: super::ImageId,
}

impl ListedAt {
    const DIGITS: usize = 12;

    /// The written form, or `None` for a time before the epoch or past year 33658.
    pub fn key(&self) -> Option<String> {
        let at = u64::try_from(self.deleted_at.0).ok()?;
        let digits = at.to_string();
        (digits.len() <= Self::DIGITS).then(|| format!("{at:012}_{}", self.id))
    }

    /// Reads the written form strictly: anything else is not a cursor.
    pub fn parse(raw: &str) -> Option<Self> {
        let (at, id) = raw.split_once('_')?;
        if at.len() != Self::DIGITS || !at.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            deleted_at: UnixTime(at.parse().ok()?),
            id: super::ImageId::parse(id).ok()?,
        })
    }
}

/// What the trash listing shows of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trashed {
    pub id: super::ImageId,
    pub album_id: AlbumId,
    pub deleted_at: UnixTime,
    pub deleted_by: Actor,
    pub purge_at: UnixTime,
}

impl Trashed {
    pub fn expired(&self, now: UnixTime) -> bool {
        self.purge_at <= now
    }

    pub fn listed_at(&self) -> ListedAt {
        ListedAt {
            deleted_at: self.deleted_at,
            id: self.id.clone(),
        }
    }
}

impl TrashEntry {
    pub fn listed_at(&self) -> ListedAt {
        ListedAt {
            deleted_at: self.deleted_at,
            id: self.record.id.clone(),
        }
    }

    pub fn summary(&self) -> Trashed {
        Trashed {
            id: self.record.id.clone(),
            album_id: self.record.album_id.clone(),
            deleted_at: self.deleted_at,
            deleted_by: self.deleted_by.clone(),
            purge_at: self.purge_at,
        }
    }

    pub fn new(record: ImageRecord, stamp: &Stamp, days: TrashDays) -> Self {
        Self {
            record,
            deleted_at: stamp.at,
            deleted_by: stamp.by.clone(),
            request_id: stamp.request_id.clone(),
            purge_at: days.purge_at(stamp.at),
        }
    }

    pub fn album_id(&self) -> &AlbumId {
        &self.record.album_id
    }

    /// DynamoDB's TTL deletes within days of expiry, not at once: an entry past
    /// `purge_at` is treated as gone whether or not it is still stored.
    pub fn expired(&self, now: UnixTime) -> bool {
        self.purge_at <= now
    }
}

/// How an entry left the trash by our hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Restored,
    Erased,
}

impl Closing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restored => "restored",
            Self::Erased => "erased",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Restored, Self::Erased]
            .into_iter()
            .find(|c| c.as_str() == raw)
    }
}

/// What an entry becomes when it is restored or erased: who did it, for which request,
/// when. Read as no entry at all; kept a day (its own TTL) so that the trash table's
/// stream carries who closed it, which a removal (old image only) cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub id: super::ImageId,
    pub album_id: AlbumId,
    pub outcome: Closing,
    pub stamp: Stamp,
    pub purge_at: UnixTime,
}

impl Tombstone {
    /// A day: the stream keeps a change 24 hours, and nothing reads a tombstone after.
    pub const KEPT_SECONDS: i64 = 86_400;

    pub fn of(entry: &TrashEntry, outcome: Closing, stamp: &Stamp) -> Self {
        Self {
            id: entry.record.id.clone(),
            album_id: entry.album_id().clone(),
            outcome,
            stamp: stamp.clone(),
            purge_at: UnixTime(stamp.at.0.saturating_add(Self::KEPT_SECONDS)),
        }
    }
}

/// An S3 version id: opaque, at most 1024 bytes (S3 documents no bound; this one
/// keeps a hostile answer from growing a request).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(String);

impl VersionId {
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.len() <= Self::MAX_LEN).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One version of an object: its bytes, or a delete marker that hides those below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: ObjectKey,
    pub version: VersionId,
    pub marker: bool,
}

/// The versions to remove so that a key shows its newest bytes again: its delete
/// markers, all of them. Removing a marker never hides anything, so where each sits
/// in the key's history does not matter (S3 lists markers apart from bytes, and
/// their order would have to be rebuilt from timestamps); a key with markers only
/// is then as it was before it was ever written.
pub fn markers(versions: &[ObjectVersion]) -> Vec<ObjectVersion> {
    versions.iter().filter(|v| v.marker).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trash_days_parse_zero_as_none_and_refuse_the_rest() {
        assert_eq!(TrashDays::parse("0"), Ok(None));
        assert_eq!(TrashDays::parse("30").unwrap().unwrap().get(), 30);
        for bad in ["", "-1", "3651", "1.5", "thirty", "99999999999"] {
            assert_eq!(TrashDays::parse(bad), Err(InvalidTrashDays), "{bad:?}");
        }
    }

    #[test]
    fn listing_positions_sort_as_their_written_form_and_read_back_strictly() {
        let id = |n: u8| {
            super::super::ImageId::parse(&format!("00000000-0000-4000-8000-0000000000{n:02}"))
                .unwrap()
        };
        let at = |t: i64, n: u8| ListedAt {
            deleted_at: UnixTime(t),
            id: id(n),
        };
        let mut positions = [at(99, 1), at(1_800_000_000, 2), at(99, 0), at(100, 3)];
        let mut keys: Vec<String> = positions.iter().map(|p| p.key().unwrap()).collect();
        positions.sort();
        keys.sort();
        assert_eq!(
            positions
                .iter()
                .map(|p| p.key().unwrap())
                .collect::<Vec<_>>(),
            keys
        );
        assert_eq!(ListedAt::parse(&keys[0]), Some(at(99, 0)));
        for bad in [
            "",
            "99_x",
            "99_00000000-0000-4000-8000-000000000001",
            "000000000099-00000000-0000-4000-8000-000000000001",
            "00000000009a_00000000-0000-4000-8000-000000000001",
        ] {
            assert_eq!(ListedAt::parse(bad), None, "{bad:?}");
        }
        assert_eq!(at(-1, 0).key(), None);
    }

    #[test]
    fn purge_is_days_after_the_deletion() {
        let days = TrashDays::parse("30").unwrap().unwrap();
        assert_eq!(
            days.purge_at(UnixTime(1_000)),
            UnixTime(1_000 + 30 * 86_400)
        );
    }

    #[test]
    fn actors_read_as_the_user_or_the_trigger() {
        assert_eq!(Actor::User("42".into()).to_string(), "42");
        assert_eq!(Actor::System(Trigger::Stream).to_string(), "system:stream");
        assert_eq!(Trigger::parse("album"), Some(Trigger::Album));
        assert_eq!(Trigger::parse("user"), None);
    }

    #[test]
    fn request_ids_that_cannot_be_stored_become_unknown() {
        assert_eq!(RequestId::new("c6af9ac6-7b61").as_str(), "c6af9ac6-7b61");
        for bad in ["", "a b", "x\n", &"r".repeat(129)] {
            assert_eq!(RequestId::new(bad).as_str(), "unknown");
        }
    }

    fn v(id: &str, marker: bool) -> ObjectVersion {
        ObjectVersion {
            key: ObjectKey::parse("k").unwrap(),
            version: VersionId::parse(id).unwrap(),
            marker,
        }
    }

    #[test]
    fn every_marker_goes_and_no_bytes() {
        // GIVEN stacked markers over bytes, and an old marker between two versions
        let stack = [
            v("m3", true),
            v("m2", true),
            v("b2", false),
            v("m1", true),
            v("b1", false),
        ];
        // THEN the three markers go, and nothing else
        let gone = markers(&stack);
        let gone: Vec<&str> = gone.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(gone, ["m3", "m2", "m1"]);
        assert_eq!(markers(&[v("b", false)]), vec![]);
        assert_eq!(markers(&[]), vec![]);
    }
}
