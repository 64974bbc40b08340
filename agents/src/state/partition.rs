//! [`PartitionData`]: what a worker holds of one table partition (the keys and values, and
//! the last changelog offset they include), and how a changelog record changes it.
//!
//! Values are held decoded, as Faust's memory store holds Python objects: a read is a map
//! look-up, a `+= 1` decodes nothing. A changelog record is applied as Faust applies it: a
//! value replaces the key's value, a tombstone (no value) removes the key.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// One table partition's keys and values, and the changelog offset they include.
#[derive(Debug, Clone)]
pub struct PartitionData<K, V> {
    map: HashMap<K, V>,
    /// Offset of the last changelog record this data includes (`None`: none yet).
    applied: Option<i64>,
}

impl<K, V> Default for PartitionData<K, V> {
    fn default() -> Self {
        PartitionData {
            map: HashMap::new(),
            applied: None,
        }
    }
}

impl<K: Hash + Eq, V> PartitionData<K, V> {
    /// The value of `key`, if stored.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The value of `key` to change in place, if stored.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Whether `key` is stored.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Stores `value` under `key`.
    pub fn set(&mut self, key: K, value: V) {
        self.map.insert(key, value);
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    /// Applies a changelog record at `offset`: `Some` value sets, `None` (a tombstone)
    /// removes.
    pub fn apply(&mut self, key: K, value: Option<V>, offset: i64) {
        match value {
            Some(v) => {
                self.map.insert(key, v);
            }
            None => {
                self.map.remove(&key);
            }
        }
        self.mark_applied(offset);
    }

    /// Records that the data includes the changelog up to `offset` (a record it skipped,
    /// or one it wrote itself).
    pub fn mark_applied(&mut self, offset: i64) {
        if self.applied.is_none_or(|a| offset > a) {
            self.applied = Some(offset);
        }
    }

    /// Offset of the last changelog record included.
    pub fn applied(&self) -> Option<i64> {
        self.applied
    }

    /// Keys stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every key and value.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Removes the keys `stale` picks, returning them with their values.
    pub fn remove_where(&mut self, mut stale: impl FnMut(&K) -> bool) -> Vec<(K, V)>
    where
        K: Clone,
    {
        let keys: Vec<K> = self.map.keys().filter(|k| stale(k)).cloned().collect();
        keys.into_iter()
            .filter_map(|k| self.map.remove(&k).map(|v| (k, v)))
            .collect()
    }

    /// Forgets everything (the changelog was recreated: it is replayed from its start).
    pub fn clear(&mut self) {
        self.map.clear();
        self.applied = None;
    }
}

/// The partitions of one table that a worker holds, behind one lock.
#[derive(Debug)]
pub struct PartitionMap<K, V>(Mutex<HashMap<i32, PartitionData<K, V>>>);

impl<K, V> Default for PartitionMap<K, V> {
    fn default() -> Self {
        PartitionMap(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, V> PartitionMap<K, V> {
    /// The partitions, locked.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<i32, PartitionData<K, V>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts holding `partition`, empty.
    pub fn open(&self, partition: i32) {
        self.lock().insert(partition, PartitionData::default());
    }

    /// The offset of the last changelog record `partition`'s data includes.
    pub fn applied(&self, partition: i32) -> Option<i64> {
        self.lock().get(&partition).and_then(PartitionData::applied)
    }

    /// Forgets `partition`'s data, keeping the partition held.
    pub fn wipe(&self, partition: i32) {
        if let Some(d) = self.lock().get_mut(&partition) {
            d.clear();
        }
    }

    /// Stops holding `partition`.
    pub fn close(&self, partition: i32) {
        self.lock().remove(&partition);
    }

    /// Records that `partition`'s data includes the changelog up to `offset`.
    pub fn mark_applied(&self, partition: i32, offset: i64) {
        if let Some(d) = self.lock().get_mut(&partition) {
            d.mark_applied(offset);
        }
    }

    /// The partitions held, sorted.
    pub fn held(&self) -> Vec<i32> {
        let mut p: Vec<i32> = self.lock().keys().copied().collect();
        p.sort_unstable();
        p
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::core::codec::{Codec, Json};

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, i64),
        Add(u8, i64),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..16, any::<i64>()).prop_map(|(k, v)| Op::Set(k, v)),
            (0u8..16, -5i64..5).prop_map(|(k, d)| Op::Add(k, d)),
            (0u8..16).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Any sequence of writes, sent to a changelog as Faust encodes it (json key and
        /// value, a tombstone for a removal) and replayed into an empty partition, gives the
        /// same table, and the replay ends at the last offset.
        #[test]
        fn replaying_the_changelog_gives_the_same_table(ops in proptest::collection::vec(op(), 0..200)) {
            let mut live: PartitionData<String, i64> = PartitionData::default();
            let mut changelog: Vec<(bytes::Bytes, Option<bytes::Bytes>)> = Vec::new();
            for op in ops {
                let (key, value) = match op {
                    Op::Set(k, v) => (format!("k{k}"), Some(v)),
                    Op::Add(k, d) => {
                        let key = format!("k{k}");
                        let v = live.get(&key).copied().unwrap_or(0).wrapping_add(d);
                        (key, Some(v))
                    }
                    Op::Remove(k) => (format!("k{k}"), None),
                };
                match value {
                    Some(v) => live.set(key.clone(), v),
                    None => {
                        live.remove(&key);
                    }
                }
                let k = Codec::<String>::encode(&Json, &key).unwrap();
                let v = value.map(|v| Codec::<i64>::encode(&Json, &v).unwrap());
                changelog.push((k, v));
            }
            let mut recovered: PartitionData<String, i64> = PartitionData::default();
            for (offset, (k, v)) in changelog.iter().enumerate() {
                let key: String = Codec::<String>::decode(&Json, k).unwrap();
                let value = v.as_ref().map(|v| Codec::<i64>::decode(&Json, v).unwrap());
                recovered.apply(key, value, offset as i64);
            }
            let a: BTreeMap<_, _> = live.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let b: BTreeMap<_, _> = recovered.iter().map(|(k, v)| (k.clone(), *v)).collect();
            prop_assert_eq!(a, b);
            prop_assert_eq!(recovered.applied(), changelog.len().checked_sub(1).map(|n| n as i64));
        }
    }
}
