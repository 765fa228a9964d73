//! Reading and writing cgroup control files, with the file named in every error.

use std::path::Path;

use crate::{Error, Result};

pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|source| Error::Write {
        path,
        value: value.to_string(),
        source,
    })
}

pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| Error::Read { path, source })
}

/// Writes only when the file exists; says which controller is missing otherwise.
pub fn write_required(dir: &Path, file: &str, value: &str, what: &str) -> Result<()> {
    if !dir.join(file).exists() {
        return Err(Error::Unsupported(format!(
            "{what} is not available on this host ({} is missing)",
            dir.join(file).display()
        )));
    }
    write(dir, file, value)
}
