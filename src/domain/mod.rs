//! The domain: ids, claims, image records and the one implementation of "delete these
//! images" that every trigger uses, with the trash it may move them to. Nothing here
//! knows about HTTP or the AWS SDK.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

pub mod album;
pub mod audit;
pub mod claims;
pub mod deletion;
pub mod ids;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod properties_trash;
pub mod restore;
pub mod trash;

pub use album::{AlbumOutcome, AlbumProgress};
pub use claims::{Abilities, Claims};
pub use deletion::{Authority, DeleteOutcome, Deleter, Denied};
pub use ids::{AlbumId, ImageId, ImageIds, InvalidImageId, InvalidImageIds, ObjectKey};

/// One image as the catalog knows it: the album it belongs to (what authorization is
/// decided on) and every object it owns in the object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: ImageId,
    pub album_id: AlbumId,
    pub object_keys: Vec<ObjectKey>,
    /// Everything else the catalog holds for the image, for a restore to put back.
    pub rest: Opaque,
}

/// What an adapter keeps of an item beyond the fields the domain reads: only the
/// adapter that made it can look inside. Empty unless the whole item was asked for
/// (the trash keeps whole records). Equal only to itself (a clone of the same read).
#[derive(Clone, Default)]
pub struct Opaque(Option<Arc<dyn Any + Send + Sync>>);

impl Opaque {
    pub fn new<T: Any + Send + Sync>(inner: T) -> Self {
        Self(Some(Arc::new(inner)))
    }

    /// The adapter's own value, if this holds one of type `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|inner| inner.downcast_ref())
    }
}

impl PartialEq for Opaque {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Opaque {}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Opaque(..)"
        } else {
            "Opaque(empty)"
        })
    }
}
