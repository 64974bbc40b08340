//! [`SetTable`]: Faust's `app.SetTable(name)`: each key holds a set of members, changed with
//! `add`, `discard` and `update`, every change sent to the changelog as Faust's operation
//! records (not compacted, as Faust's): key `[op, key]` (json), value the member, for `op` 1
//! (add) and 2 (discard), or `[added, removed]` for 15 (update). A worker recovers its
//! partitions by replaying those operations, and reads Faust's.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use bytes::Bytes;
use mephisto_wire::record::Record;

use crate::app::table::{Table, TableError};
use crate::app::topic::Model;
use crate::app::App;
use crate::core::codec::{Codec, Json};
use crate::core::context;
use crate::runtime::tables::TablePartitions;
use crate::runtime::topics::TopicSpec;
use crate::state::partition::{PartitionData, PartitionMap};

const ADD: u8 = 0x1;
const DISCARD: u8 = 0x2;
const UPDATE: u8 = 0xF;

struct Inner<K, M> {
    /// Writes the changelog (its own data is unused).
    writer: Table<(u8, K), serde_json::Value>,
    partitions: PartitionMap<K, HashSet<M>>,
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
            }),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        self.inner.writer.name()
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
            .send(partition, (key_bytes, Some(value_bytes)))
            .await
    }

    pub(crate) fn as_partitions(&self) -> Arc<dyn TablePartitions> {
        Arc::new(self.clone())
    }

    /// Applies one changelog operation; `false` if it does not decode.
    fn apply_one(
        data: &mut PartitionData<K, HashSet<M>>,
        key: &Bytes,
        value: Option<Bytes>,
    ) -> bool {
        let Ok((op, k)) = Codec::<(u8, K)>::decode(&Json, key) else {
            return false;
        };
        let Some(value) = value else {
            return false;
        };
        let set = match data.get_mut(&k) {
            Some(s) => s,
            None => {
                data.set(k.clone(), HashSet::new());
                match data.get_mut(&k) {
                    Some(s) => s,
                    None => return false,
                }
            }
        };
        match op {
            ADD => match serde_json::from_slice::<M>(&value) {
                Ok(m) => {
                    set.insert(m);
                    true
                }
                Err(_) => false,
            },
            DISCARD => match serde_json::from_slice::<M>(&value) {
                Ok(m) => {
                    set.remove(&m);
                    true
                }
                Err(_) => false,
            },
            UPDATE => match serde_json::from_slice::<(Vec<M>, Vec<M>)>(&value) {
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

    fn open(&self, partition: i32) {
        self.inner.partitions.open(partition);
    }

    fn applied(&self, partition: i32) -> Option<i64> {
        self.inner.partitions.applied(partition)
    }

    fn wipe(&self, partition: i32) {
        self.inner.partitions.wipe(partition);
    }

    fn apply(&self, partition: i32, records: &[Record]) -> usize {
        let mut parts = self.inner.partitions.lock();
        let data = parts.entry(partition).or_default();
        let mut n = 0;
        for r in records {
            let applied = match r.key_bytes() {
                Some(k) => Self::apply_one(data, &k, r.value_bytes()),
                None => false,
            };
            if applied {
                n += 1;
            } else {
                tracing::error!(
                    table = %self.name(), partition, offset = r.offset(),
                    "set table changelog record does not decode; skipped"
                );
            }
            data.mark_applied(r.offset());
        }
        n
    }

    fn recovered(&self, _partition: i32) {}

    fn close(&self, partition: i32) {
        self.inner.partitions.close(partition);
    }

    fn cleanup(&self) -> usize {
        0
    }

    fn mark_applied(&self, partition: i32, offset: i64) {
        self.inner.partitions.mark_applied(partition, offset);
    }
}
