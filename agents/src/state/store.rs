//! [`StoreUrl`]: Faust's `store` setting, the URL that says where a table keeps its partitions.
//!
//! - `memory://` (the default): in the worker's memory; a partition assigned to the worker is
//!   recovered from its whole changelog.
//! - `fjall://` (the app's `datadir`, under `tables/`) or `fjall:///an/absolute/path` or
//!   `fjall://a/relative/path`: a [`DurableStore`](crate::state::durable::DurableStore) on
//!   disk; a partition stored there is recovered from the changelog offset after the stored
//!   one. Faust's `rocksdb://` means the same (a Faust app's settings work unchanged).

use std::path::{Path, PathBuf};

/// Where a table keeps its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// In memory (`memory://`).
    Memory,
    /// On disk, in a fjall database (`fjall://[path]`); `None`: the app's data directory.
    Fjall(Option<PathBuf>),
}

/// A store URL that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown table store {url:?}: expected memory:// or fjall://[path] (rocksdb:// is read as fjall://)")]
pub struct StoreUrlError {
    /// The URL given.
    pub url: String,
}

impl StoreUrl {
    /// Parses `url`.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreUrlError> {
        let trimmed = url.trim();
        let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| StoreUrlError {
            url: url.to_owned(),
        })?;
        match scheme.to_ascii_lowercase().as_str() {
            "memory" if rest.is_empty() => Ok(StoreUrl::Memory),
            "fjall" | "rocksdb" => Ok(StoreUrl::Fjall(
                (!rest.is_empty()).then(|| PathBuf::from(rest)),
            )),
            _ => Err(StoreUrlError {
                url: url.to_owned(),
            }),
        }
    }

    /// The directory of a durable store, with `datadir` for a URL without a path (`None` for
    /// the memory store).
    pub fn directory(&self, datadir: &Path) -> Option<PathBuf> {
        match self {
            StoreUrl::Memory => None,
            StoreUrl::Fjall(Some(path)) => Some(path.clone()),
            StoreUrl::Fjall(None) => Some(datadir.join("tables")),
        }
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_as_faust_spells_them() {
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        assert_eq!(StoreUrl::parse("fjall://").unwrap(), StoreUrl::Fjall(None));
        assert_eq!(
            StoreUrl::parse("rocksdb://").unwrap(),
            StoreUrl::Fjall(None)
        );
        assert_eq!(
            StoreUrl::parse("fjall:///var/lib/app").unwrap(),
            StoreUrl::Fjall(Some(PathBuf::from("/var/lib/app")))
        );
        assert_eq!(
            StoreUrl::parse("fjall://data").unwrap(),
            StoreUrl::Fjall(Some(PathBuf::from("data")))
        );
        for bad in ["", "memory", "redis://x", "memory://x"] {
            let e = StoreUrl::parse(bad).unwrap_err();
            assert!(e.to_string().contains("unknown table store"), "{e}");
        }
        let d = Path::new("/d");
        assert_eq!(StoreUrl::Memory.directory(d), None);
        assert_eq!(
            StoreUrl::Fjall(None).directory(d),
            Some(PathBuf::from("/d/tables"))
        );
    }
}
