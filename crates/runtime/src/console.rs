//! Terminals for the container process (filled in by a later commit).
