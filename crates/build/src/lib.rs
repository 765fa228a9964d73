//! berth's image builder: Dockerfiles into images.
//!
//! - `dockerfile`: the Dockerfile language (parsing, variable substitution);
//! - `ignore`, `context`, `copy`: the build context, `.dockerignore`, and COPY/ADD into a
//!   root filesystem;
//! - `builder` (with `stepfs`, `run`, `image_config`, `cache`, `output`): the builder
//!   itself, which runs the steps through the engine and commits each as an image.

mod builder;
mod cache;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod error;
pub mod ignore;
mod image_config;
pub mod output;
mod run;
mod stepfs;
mod tree;

pub use builder::{build, remove_leftovers, Options};
pub use error::{Error, Result};
