//! [`DurableStore`]: where table partitions are kept on disk (fjall, a pure-Rust LSM tree), and
//! [`StoredPartition`], one table partition in it.
//!
//! One fjall database per store directory (a worker's tables share it, as they share its
//! journal and cache), one keyspace per table partition, and one `applied` keyspace holding,
//! for each table partition, the offset of the last changelog record its keyspace includes.
//! Every write puts its keys and that offset in one batch, which fjall applies atomically: after
//! a crash a partition holds exactly a prefix of its changelog, and recovery reads the
//! changelog from the offset after it.
//!
//! Keys and values are kept as the changelog encodes them (Faust's json by default), so a
//! stored partition is what replaying its changelog up to the stored offset gives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A durable store's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store's directory could not be opened or created.
    #[error("cannot open the table store at {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// fjall's error.
        #[source]
        source: fjall::Error,
    },
    /// A read or write of a table partition failed.
    #[error("table store at {path}, {partition}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The table partition (`table#partition`).
        partition: String,
        /// fjall's error.
        #[source]
        source: fjall::Error,
    },
    /// A table name too long to name its keyspaces (255 bytes with the partition).
    #[error("table name {table:?} is too long for the table store (at most 240 bytes)")]
    Name {
        /// The table.
        table: String,
    },
    /// A stored offset that is not 8 bytes (the store was written by something else).
    #[error("table store at {path}, {partition}: stored offset is {len} bytes, not 8")]
    Offset {
        /// The directory.
        path: PathBuf,
        /// The table partition.
        partition: String,
        /// Its length.
        len: usize,
    },
}

/// A directory of table partitions (one fjall database). Cheap to clone.
#[derive(Clone)]
pub struct DurableStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: fjall::Database,
    applied: fjall::Keyspace,
    /// Keyspaces opened, by name.
    keyspaces: Mutex<HashMap<String, fjall::Keyspace>>,
}

impl std::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// The longest table name (fjall names keyspaces with at most 255 bytes).
const MAX_TABLE_NAME: usize = 240;

impl DurableStore {
    /// Opens the store in `path`, creating it when missing (journal replayed after a crash).
    pub fn open(path: &Path) -> Result<DurableStore, StoreError> {
        let failed = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(|e| failed(fjall::Error::from(e)))?;
        let db = fjall::Database::builder(path).open().map_err(failed)?;
        let applied = db
            .keyspace("applied", fjall::KeyspaceCreateOptions::default)
            .map_err(failed)?;
        Ok(DurableStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                db,
                applied,
                keyspaces: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// `partition` of `table`, empty if never stored.
    pub fn partition(&self, table: &str, partition: i32) -> Result<StoredPartition, StoreError> {
        if table.len() > MAX_TABLE_NAME {
            return Err(StoreError::Name {
                table: table.to_owned(),
            });
        }
        let name = format!("t:{table}#{partition}");
        let data = {
            let mut open = self
                .inner
                .keyspaces
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match open.get(&name) {
                Some(k) => k.clone(),
                None => {
                    let k = self
                        .inner
                        .db
                        .keyspace(&name, fjall::KeyspaceCreateOptions::default)
                        .map_err(|source| StoreError::Io {
                            path: self.inner.path.clone(),
                            partition: name.clone(),
                            source,
                        })?;
                    open.insert(name.clone(), k.clone());
                    k
                }
            }
        };
        Ok(StoredPartition {
            store: self.clone(),
            data,
            name,
        })
    }

    /// Writes the journal to disk (`fdatasync`): what was written before survives a crash of
    /// the machine, not only of the process. The worker calls it every commit interval.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.inner
            .db
            .persist(fjall::PersistMode::SyncData)
            .map_err(|source| StoreError::Io {
                path: self.inner.path.clone(),
                partition: "(journal)".into(),
                source,
            })
    }
}

impl DurableStore {
    /// Writes every table partition's memtable to a sorted table and waits for it, so that
    /// the journal is empty: the next open does not replay it (a clean stop does this; after a
    /// crash, the open replays what came since the memtables were last written).
    pub fn flush(&self) -> Result<(), StoreError> {
        let keyspaces: Vec<(String, fjall::Keyspace)> = self
            .inner
            .keyspaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, k)| (n.clone(), k.clone()))
            .chain(std::iter::once((
                "applied".to_owned(),
                self.inner.applied.clone(),
            )))
            .collect();
        for (name, keyspace) in keyspaces {
            // fjall 3.1 keeps this public but out of its docs (its tests use it); the lock
            // file pins the version, and a store test covers it.
            keyspace
                .rotate_memtable_and_wait()
                .map_err(|source| StoreError::Io {
                    path: self.inner.path.clone(),
                    partition: name,
                    source,
                })?;
        }
        Ok(())
    }
}

/// One table partition in a [`DurableStore`]: its keys and values as the changelog encodes
/// them, and the offset of the last changelog record they include. Cheap to clone.
#[derive(Clone)]
pub struct StoredPartition {
    store: DurableStore,
    data: fjall::Keyspace,
    name: String,
}

impl std::fmt::Debug for StoredPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPartition")
            .field("name", &self.name)
            .finish()
    }
}

/// One change of a table partition: a key and its new value, `None` removes it.
pub type Change<'a> = (&'a [u8], Option<&'a [u8]>);

impl StoredPartition {
    fn failed(&self, source: fjall::Error) -> StoreError {
        StoreError::Io {
            path: self.store.inner.path.clone(),
            partition: self.name.clone(),
            source,
        }
    }

    /// The offset of the last changelog record stored (`None`: nothing stored).
    pub fn applied(&self) -> Result<Option<i64>, StoreError> {
        let Some(v) = self
            .store
            .inner
            .applied
            .get(&self.name)
            .map_err(|e| self.failed(e))?
        else {
            return Ok(None);
        };
        let bytes: [u8; 8] = v[..].try_into().map_err(|_| StoreError::Offset {
            path: self.store.inner.path.clone(),
            partition: self.name.clone(),
            len: v.len(),
        })?;
        Ok(Some(i64::from_be_bytes(bytes)))
    }

    /// Calls `f` with every stored key and value, in key order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        for item in self.data.iter() {
            let (k, v) = item.into_inner().map_err(|e| self.failed(e))?;
            f(&k, &v);
        }
        Ok(())
    }

    /// The stored value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .data
            .get(key)
            .map_err(|e| self.failed(e))?
            .map(|v| v.to_vec()))
    }

    /// Applies `changes` and records `offset` as the last changelog record included, in one
    /// atomic batch.
    pub fn write<'a>(
        &self,
        changes: impl IntoIterator<Item = Change<'a>>,
        offset: i64,
    ) -> Result<(), StoreError> {
        let inner = &self.store.inner;
        let mut batch = fjall::OwnedWriteBatch::with_capacity(inner.db.clone(), 16);
        for (key, value) in changes {
            match value {
                Some(v) => batch.insert(&self.data, key, v),
                None => batch.remove(&self.data, key),
            }
        }
        batch.insert(
            &inner.applied,
            self.name.as_str(),
            &offset.to_be_bytes()[..],
        );
        batch.commit().map_err(|e| self.failed(e))
    }

    /// Removes every key and the stored offset (the changelog is replayed from its start).
    pub fn wipe(&self) -> Result<(), StoreError> {
        self.data.clear().map_err(|e| self.failed(e))?;
        self.store
            .inner
            .applied
            .remove(self.name.as_str())
            .map_err(|e| self.failed(e))
    }

    /// Keys stored (approximate: fjall counts removed keys until it compacts them).
    pub fn approximate_len(&self) -> usize {
        self.data.approximate_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("mephisto-durable-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_write_and_its_offset_survive_a_reopen() {
        let d = dir();
        {
            let store = DurableStore::open(&d).unwrap();
            let p = store.partition("counts", 3).unwrap();
            assert_eq!(p.applied().unwrap(), None);
            p.write([(&b"a"[..], Some(&b"1"[..])), (b"b", Some(b"2"))], 7)
                .unwrap();
            p.write([(&b"a"[..], None)], 8).unwrap();
            // Another partition of the same table is its own.
            let q = store.partition("counts", 4).unwrap();
            q.write([(&b"z"[..], Some(&b"9"[..]))], 0).unwrap();
        }
        let store = DurableStore::open(&d).unwrap();
        let p = store.partition("counts", 3).unwrap();
        assert_eq!(p.applied().unwrap(), Some(8));
        let mut seen = Vec::new();
        p.for_each(|k, v| seen.push((k.to_vec(), v.to_vec())))
            .unwrap();
        assert_eq!(seen, vec![(b"b".to_vec(), b"2".to_vec())]);
        assert_eq!(p.get(b"b").unwrap(), Some(b"2".to_vec()));
        p.wipe().unwrap();
        assert_eq!(p.applied().unwrap(), None);
        assert_eq!(p.get(b"b").unwrap(), None);
        let q = store.partition("counts", 4).unwrap();
        assert_eq!(q.applied().unwrap(), Some(0));
        // Flushed, the store opens again with the same data and no journal to replay.
        q.write([(&b"y"[..], Some(&b"8"[..]))], 1).unwrap();
        store.flush().unwrap();
        drop((p, q, store));
        let store = DurableStore::open(&d).unwrap();
        let q = store.partition("counts", 4).unwrap();
        assert_eq!(q.applied().unwrap(), Some(1));
        assert_eq!(q.get(b"y").unwrap(), Some(b"8".to_vec()));
        drop((q, store));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_table_name_too_long_is_an_error() {
        let d = dir();
        let store = DurableStore::open(&d).unwrap();
        let err = store.partition(&"x".repeat(300), 0).unwrap_err();
        assert!(matches!(err, StoreError::Name { .. }), "{err}");
        drop(store);
        let _ = std::fs::remove_dir_all(&d);
    }
}
