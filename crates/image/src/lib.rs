//! berth-image: container images — references, content store, manifests, registry client,
//! layer unpacking, overlay snapshots, the local image database and archives.
//!
//! The engine opens one [`ImageService`] per root and calls:
//! - `pull(reference, &PullOptions)` / `push(source, target, &ProgressSink)` (async),
//!   `login(registry, &Credentials)` / `logout(registry)`;
//! - `list()`, `inspect(name_or_id)`, `tag(source, target)`, `remove(name_or_id, force)`,
//!   `prune()`, with `set_usage_check(..)` telling which containers use an image;
//! - `lowerdirs(image)` (overlayfs lowerdirs, top first) or `mount(image, upper, work, target)`
//!   to make a container's root filesystem;
//! - `save_docker`, `save_oci`, `load`, `import` for archives.
//!
//! Long work reports [`progress::Progress`] events; every failure is one [`Error`] whose
//! message says what to do next.

pub mod archive;
pub mod changes;
pub mod commit;
pub mod diff;
pub mod digest;
pub mod error;
pub mod idmap;
pub mod images;
pub mod manifest;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use commit::{NewImage, NewLayer};
pub use digest::Digest;
pub use error::{Error, Result};
pub use idmap::IdMap;
pub use reference::Reference;
pub use service::{ImageService, Options, PullOptions, Removed, Transfers, UsageCheck};
