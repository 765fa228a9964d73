//! OCI hooks (filled in by a later commit).
