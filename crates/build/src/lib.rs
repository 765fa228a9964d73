//! berth's image builder: Dockerfiles into images.
//!
//! - `dockerfile`: the Dockerfile language (parsing, variable substitution);
//! - `ignore`, `context`, `copy`: the build context, `.dockerignore`, and COPY/ADD into a
//!   root filesystem;
//! - the builder itself, which runs the steps through the engine.

pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod error;
pub mod ignore;
mod tree;
