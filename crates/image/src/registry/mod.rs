//! The registry side: the distribution-API client and its authentication.

pub mod auth;
pub mod client;

pub use auth::{CredentialStore, Credentials};
pub use client::{BlobPush, RegistryClient, RegistryOptions, Repo};
