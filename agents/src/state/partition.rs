//! [`PartitionData`]: what a worker holds of one table partition (the keys and values, and
//! the last changelog offset they include), and how a changelog record changes it.
//!
//! Values are held decoded, as Faust's memory store holds Python objects: a read is a map
//! look-up, a `+= 1` decodes nothing. A changelog record is applied as Faust applies it: a
//! value replaces the key's value, a tombstone (no value) removes the key.

use std::collections::HashMap;
use std::hash::Hash;

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
