//! [`ScratchDir`]: a directory of its own for one test (a table store, a data directory),
//! removed when dropped.

use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary directory, removed with everything in it
/// when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new empty directory whose name starts with `prefix` and is unique to the process.
    pub fn new(prefix: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(crate::names::unique(prefix));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        ScratchDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
