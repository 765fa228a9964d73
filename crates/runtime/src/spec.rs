//! Default spec and features document (filled in by a later commit).
