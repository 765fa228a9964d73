//! Control groups: what a container may use. Placeholder API, filled in by the cgroups work.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
}
