//! The domain: ids, claims, image records and the one implementation of "delete these
//! images" that every trigger uses. Nothing here knows about HTTP or the AWS SDK.

pub mod album;
pub mod claims;
pub mod deletion;
pub mod ids;
#[cfg(test)]
mod properties;

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
}
