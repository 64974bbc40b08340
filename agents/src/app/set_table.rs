//! [`SetTable`]: Faust's `app.SetTable(name)`: each key holds a set of members, changed with
//! `add`, `discard` and `update`, every change sent to the changelog as Faust's operation
//! records (not compacted, as Faust's): key `[op, key]` (json), value the member, for `op` 1
//! (add) and 2 (discard), or `[added, removed]` for 15 (update). A worker recovers its
//! partitions by replaying those operations, and reads Faust's.
//!
//! In a durable store a partition keeps each key's whole set (json key, json list of
//! members), not the operations: recovery stores the sets it touched with the batch's last
//! offset, and this worker's own operation, once the broker has it, is applied to the stored
//! set (read, changed, written with its offset in one batch).

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use bytes::Bytes;
use mephisto_engine::producer::RecordMetadata;
use mephisto_wire::record::Record;

use crate::app::table::{Table, TableError};
use crate::app::table_store::TableStore;
use crate::app::topic::Model;
use crate::app::App;
use crate::core::codec::{Codec, Json};
use crate::core::context;
use crate::runtime::tables::{ApplyError, TablePartitions};
use crate::runtime::topics::TopicSpec;
use crate::runtime::tracker::AfterAck;
use crate::state::durable::{DurableStore, StoreError, StoredPartition};
use crate::state::partition::{PartitionData, PartitionMap};
use crate::state::store::StoreUrl;

const ADD: u8 = 0x1;
const DISCARD: u8 = 0x2;
const UPDATE: u8 = 0xF;

struct Inner<K, M> {
    /// Writes the changelog (its own data is unused).
    writer: Table<(u8, K), serde_json::Value>,
    partitions: PartitionMap<K, HashSet<M>>,
    /// Where the partitions are kept.
    store: TableStore,
    /// A changelog record that does not decode fails the recovery.
    fail_on_bad_records: std::sync::atomic::AtomicBool,
}

/// A table of sets (Faust's `SetTable`), made by [`App::set_table`]: `add`, `discard` and
/// `update` members of a key's set; each change goes to the changelog as Faust's operation
/// record (key `[op, key]`, value the member or `[added, removed]`). Cheap to clone.
pub struct SetTable<K, M> {
    inner: Arc<Inner<K, M>>,
}

impl<K, M> Clone for SetTable<K, M> {
    fn clone(&self) -> Self {
        SetTable {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, M> std::fmt::Debug for SetTable<K, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetTable").finish_non_exhaustive()
    }
}

fn codec_error(table: &str, source: crate::core::codec::CodecError) -> TableError {
    TableError::Codec {
        table: table.to_owned(),
        source,
    }
}

impl<K, M> SetTable<K, M>
where
    K: Model + Hash + Eq,
    M: Model + Hash + Eq,
{
    pub(crate) fn new(app: App, name: String, partitions: i32) -> Self {
        let writer = Table::new(app, name, partitions, false);
        writer.set_changelog_configs(Vec::new());
        SetTable {
            inner: Arc::new(Inner {
                writer,
                partitions: PartitionMap::default(),
                store: TableStore::default(),
                fail_on_bad_records: Default::default(),
            }),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        self.inner.writer.name()
    }

    /// Makes a changelog record that does not decode fail the recovery instead of being
    /// logged and skipped, the default.
    pub fn fail_recovery_on_bad_records(self, yes: bool) -> Self {
        self.inner
            .fail_on_bad_records
            .store(yes, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Keeps the table's partitions in `url` rather than in the app's `store` (Faust's
    /// `store=`).
    pub fn store(self, url: StoreUrl) -> Self {
        self.inner.store.set_url(url);
        self
    }

    /// Its changelog topic.
    pub fn changelog_topic(&self) -> &str {
        self.inner.writer.changelog_topic()
    }

    /// The members of `key` (empty when none): in the partition of the event being processed,
    /// or in any partition this worker holds outside an agent.
    pub fn get(&self, key: &K) -> HashSet<M> {
        let partition = context::current_partition();
        let parts = self.inner.partitions.lock();
        let found = match partition {
            Some(p) => parts.get(&p).and_then(|d| d.get(key).cloned()),
            None => parts.values().find_map(|d| d.get(key).cloned()),
        };
        found.unwrap_or_default()
    }

    /// Whether `member` is in `key`'s set.
    pub fn contains(&self, key: &K, member: &M) -> bool {
        self.get(key).contains(member)
    }

    /// Every key of the partitions this worker holds, with its members.
    pub fn items(&self) -> Vec<(K, HashSet<M>)> {
        self.inner
            .partitions
            .lock()
            .values()
            .flat_map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// The partitions this worker holds.
    pub fn held_partitions(&self) -> Vec<i32> {
        self.inner.partitions.held()
    }

    /// Adds `member` to `key`'s set.
    pub async fn add(&self, key: K, member: M) -> Result<(), TableError> {
        let value = serde_json::to_value(&member).map_err(|e| self.json_error(e))?;
        self.change(key, ADD, value, |set| {
            set.insert(member);
        })
        .await
    }

    /// Removes `member` from `key`'s set.
    pub async fn discard(&self, key: K, member: M) -> Result<(), TableError> {
        let value = serde_json::to_value(&member).map_err(|e| self.json_error(e))?;
        self.change(key, DISCARD, value, |set| {
            set.remove(&member);
        })
        .await
    }

    /// Adds `added` and removes `removed` in one change (Faust's set `update`).
    pub async fn update(&self, key: K, added: Vec<M>, removed: Vec<M>) -> Result<(), TableError> {
        let value = serde_json::to_value((&added, &removed)).map_err(|e| self.json_error(e))?;
        self.change(key, UPDATE, value, |set| {
            set.extend(added);
            for m in &removed {
                set.remove(m);
            }
        })
        .await
    }

    fn json_error(&self, e: serde_json::Error) -> TableError {
        codec_error(
            self.name(),
            crate::core::codec::CodecError::new::<M>(
                "json",
                crate::core::codec::Direction::Encode,
                e,
            ),
        )
    }

    async fn change(
        &self,
        key: K,
        op: u8,
        value: serde_json::Value,
        apply: impl FnOnce(&mut HashSet<M>),
    ) -> Result<(), TableError> {
        let partition = self.inner.writer.write_partition().await?;
        let key_bytes = serde_json::to_vec(&(op, &key))
            .map(Bytes::from)
            .map_err(|e| self.json_error(e))?;
        let value_bytes = Codec::<serde_json::Value>::encode(&Json, &value)
            .map_err(|e| codec_error(self.name(), e))?;
        let then = self.store_after_ack(&key, op, &value_bytes);
        if let Some(p) = partition {
            let mut parts = self.inner.partitions.lock();
            let data = parts.entry(p).or_default();
            match data.get_mut(&key) {
                Some(set) => apply(set),
                None => {
                    let mut set = HashSet::new();
                    apply(&mut set);
                    data.set(key, set);
                }
            }
        }
        self.inner
            .writer
            .send(partition, (key_bytes, Some(value_bytes)), then)
            .await
    }

    /// What the durable store does once the broker has an operation: the stored set of `key`
    /// changes as the operation says (`None` without a durable store).
    fn store_after_ack(&self, key: &K, op: u8, value: &Bytes) -> Option<AfterAck> {
        if !self.inner.store.is_durable() {
            return None;
        }
        let inner = Arc::clone(&self.inner);
        let key = Codec::<K>::encode(&Json, key).ok()?;
        let value = value.clone();
        Some(Box::new(move |meta: &RecordMetadata| {
            let Some(stored) = inner.store.get(meta.partition) else {
                return Ok(());
            };
            if meta.offset < 0 {
                return Ok(());
            }
            let mut set: HashSet<M> = match stored.get(&key)? {
                Some(bytes) => serde_json::from_slice(&bytes)?,
                None => HashSet::new(),
            };
            Self::apply_op(&mut set, op, &value);
            let encoded = serde_json::to_vec(&set)?;
            stored.write([(&key[..], Some(&encoded[..]))], meta.offset)?;
            Ok(())
        }))
    }

    /// Applies operation `op` with its changelog value to `set`; `false` if it does not
    /// decode.
    fn apply_op(set: &mut HashSet<M>, op: u8, value: &Bytes) -> bool {
        match op {
            ADD => match serde_json::from_slice::<M>(value) {
                Ok(m) => {
                    set.insert(m);
                    true
                }
                Err(_) => false,
            },
            DISCARD => match serde_json::from_slice::<M>(value) {
                Ok(m) => {
                    set.remove(&m);
                    true
                }
                Err(_) => false,
            },
            UPDATE => match serde_json::from_slice::<(Vec<M>, Vec<M>)>(value) {
                Ok((added, removed)) => {
                    set.extend(added);
                    for m in &removed {
                        set.remove(m);
                    }
                    true
                }
                Err(_) => false,
            },
            _ => false,
        }
    }

    pub(crate) fn as_partitions(&self) -> Arc<dyn TablePartitions> {
        Arc::new(self.clone())
    }

    /// Applies one changelog operation; the key changed if it decodes.
    fn apply_one(
        data: &mut PartitionData<K, HashSet<M>>,
        key: &Bytes,
        value: Option<Bytes>,
    ) -> Option<K> {
        let Ok((op, k)) = Codec::<(u8, K)>::decode(&Json, key) else {
            return None;
        };
        let value = value?;
        let set = match data.get_mut(&k) {
            Some(s) => s,
            None => {
                data.set(k.clone(), HashSet::new());
                data.get_mut(&k)?
            }
        };
        Self::apply_op(set, op, &value).then_some(k)
    }

    /// Loads `stored` into `data`; `false` if a key or set does not decode.
    fn load(
        stored: &StoredPartition,
        data: &mut PartitionData<K, HashSet<M>>,
    ) -> Result<bool, StoreError> {
        let mut ok = true;
        stored.for_each(|k, v| {
            let key = Codec::<K>::decode(&Json, &Bytes::copy_from_slice(k));
            match (key, serde_json::from_slice::<HashSet<M>>(v)) {
                (Ok(k), Ok(set)) => data.set(k, set),
                _ => ok = false,
            }
        })?;
        Ok(ok)
    }
}

impl<K, M> TablePartitions for SetTable<K, M>
where
    K: Model + Hash + Eq,
    M: Model + Hash + Eq,
{
    fn name(&self) -> &str {
        self.inner.writer.name()
    }

    fn changelog(&self) -> TopicSpec {
        TablePartitions::changelog(&self.inner.writer)
    }

    fn open(&self, partition: i32) -> Result<(), StoreError> {
        self.inner.partitions.open(partition);
        let Some(stored) = self.inner.store.open(self.name(), partition)? else {
            return Ok(());
        };
        let mut data = PartitionData::default();
        if Self::load(&stored, &mut data)? {
            if let Some(applied) = stored.applied()? {
                data.mark_applied(applied);
            }
        } else {
            tracing::warn!(table = %self.name(), partition,
                "stored sets do not decode: the stored partition is wiped and replayed from the changelog");
            stored.wipe()?;
            data = PartitionData::default();
        }
        self.inner.partitions.lock().insert(partition, data);
        Ok(())
    }

    fn applied(&self, partition: i32) -> Option<i64> {
        self.inner.partitions.applied(partition)
    }

    fn wipe(&self, partition: i32) -> Result<(), StoreError> {
        self.inner.partitions.wipe(partition);
        self.inner.store.wipe(partition)
    }

    fn store_url(&self) -> Option<StoreUrl> {
        self.inner.store.url()
    }

    fn attach_store(&self, store: DurableStore) {
        self.inner.store.attach(store);
    }

    fn detach_store(&self) {
        self.inner.store.detach();
    }

    fn apply(&self, partition: i32, records: &[Record]) -> Result<usize, ApplyError> {
        let strict = self
            .inner
            .fail_on_bad_records
            .load(std::sync::atomic::Ordering::Relaxed);
        let stored = self.inner.store.get(partition);
        let mut parts = self.inner.partitions.lock();
        let data = parts.entry(partition).or_default();
        let mut n = 0;
        let mut touched: HashSet<K> = HashSet::new();
        for r in records {
            let applied = match r.key_bytes() {
                Some(k) => Self::apply_one(data, &k, r.value_bytes()),
                None => None,
            };
            if let Some(k) = applied {
                n += 1;
                if stored.is_some() {
                    touched.insert(k);
                }
            } else if strict {
                return Err(ApplyError::Undecodable {
                    topic: self.changelog_topic().to_owned(),
                    partition,
                    offset: r.offset(),
                    source: crate::core::codec::CodecError::new::<K>(
                        "json",
                        crate::core::codec::Direction::Decode,
                        "not a set table operation ([op, key] and its member)",
                    ),
                });
            } else {
                tracing::error!(
                    table = %self.name(), partition, offset = r.offset(),
                    "set table changelog record does not decode; skipped"
                );
            }
            data.mark_applied(r.offset());
        }
        if let (Some(stored), Some(last)) = (stored, records.last()) {
            let mut changes: Vec<(Bytes, Option<Vec<u8>>)> = Vec::with_capacity(touched.len());
            for k in &touched {
                let (Ok(key), Some(set)) = (Codec::<K>::encode(&Json, k), data.get(k)) else {
                    continue;
                };
                changes.push((key, serde_json::to_vec(set).ok()));
            }
            stored.write(
                changes.iter().map(|(k, v)| (&k[..], v.as_deref())),
                last.offset(),
            )?;
        }
        Ok(n)
    }

    fn recovered(&self, _partition: i32) {}

    fn close(&self, partition: i32) {
        self.inner.partitions.close(partition);
        self.inner.store.close(partition);
    }

    fn cleanup(&self) -> usize {
        0
    }

    fn mark_applied(&self, partition: i32, offset: i64) {
        self.inner.partitions.mark_applied(partition, offset);
    }
}
