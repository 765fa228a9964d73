//! berth-image: container images — references, content store, manifests, registry client,
//! layer unpacking, overlay snapshots, the local image database and archives.

pub mod archive;
pub mod digest;
pub mod error;
pub mod images;
pub mod manifest;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use service::{ImageService, Options, PullOptions, Removed, UsageCheck};
