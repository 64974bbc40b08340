//! [`TableStore`]: where one table keeps its partitions, as `Table` and `SetTable` share it:
//! the store URL the table asked for, the durable store the worker attached, and the table's
//! partitions open in it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::state::durable::{DurableStore, StoreError, StoredPartition};
use crate::state::store::StoreUrl;

/// One table's store; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct TableStore {
    /// Where the table keeps its partitions, when not where the app keeps them.
    url: Mutex<Option<StoreUrl>>,
    /// The durable store, once the worker attached it (`None`: memory).
    durable: Mutex<Option<DurableStore>>,
    /// The partitions held in the durable store.
    open: Mutex<HashMap<i32, StoredPartition>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TableStore {
    /// The URL the table asked for.
    pub(crate) fn url(&self) -> Option<StoreUrl> {
        lock(&self.url).clone()
    }

    /// Asks for `url`.
    pub(crate) fn set_url(&self, url: StoreUrl) {
        *lock(&self.url) = Some(url);
    }

    /// Keeps the partitions in `store` from now on.
    pub(crate) fn attach(&self, store: DurableStore) {
        *lock(&self.durable) = Some(store);
    }

    /// Whether the partitions are kept in a durable store.
    pub(crate) fn is_durable(&self) -> bool {
        lock(&self.durable).is_some()
    }

    /// Opens `partition` of `table` in the durable store (`None` without one).
    pub(crate) fn open(
        &self,
        table: &str,
        partition: i32,
    ) -> Result<Option<StoredPartition>, StoreError> {
        let Some(store) = lock(&self.durable).clone() else {
            return Ok(None);
        };
        let stored = store.partition(table, partition)?;
        lock(&self.open).insert(partition, stored.clone());
        Ok(Some(stored))
    }

    /// The stored copy of `partition`, if held here in a durable store.
    pub(crate) fn get(&self, partition: i32) -> Option<StoredPartition> {
        lock(&self.open).get(&partition).cloned()
    }

    /// Lets go of the durable store (the worker stopped; the store closes once nothing else
    /// holds it, so that another worker of the same data directory can open it).
    pub(crate) fn detach(&self) {
        lock(&self.open).clear();
        *lock(&self.durable) = None;
    }

    /// Wipes the stored copy of `partition`, if any.
    pub(crate) fn wipe(&self, partition: i32) -> Result<(), StoreError> {
        match self.get(partition) {
            Some(stored) => stored.wipe(),
            None => Ok(()),
        }
    }

    /// Stops holding `partition` (its stored copy stays on disk).
    pub(crate) fn close(&self, partition: i32) {
        lock(&self.open).remove(&partition);
    }
}
