//! The topics the server knows: the replayed input topic (index 0) and the sink topics created
//! by CreateTopics or by a Metadata request that allows auto-creation. Every topic accepts
//! produced batches (counted, then dropped); only the input topic has records to fetch.

use std::collections::HashMap;

use super::stats::SinkTopicStats;

/// Most topics the server keeps (the input topic included); more are refused.
pub(super) const MAX_TOPICS: usize = 4096;
/// Most partitions of a created topic.
pub(super) const MAX_PARTITIONS: i32 = 4096;
/// Longest topic name (Kafka's limit).
const MAX_NAME: usize = 249;
/// Most idempotent (producer, topic, partition) sequences tracked; beyond, the map is cleared
/// (the next batch of each then counts as a gap, which the parent reports).
const MAX_SEQUENCES: usize = 1 << 20;

/// Why a topic was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CreateError {
    /// A topic of that name exists.
    Exists,
    /// The name is empty, too long or has characters Kafka refuses.
    InvalidName,
    /// The partition count is outside `1..=MAX_PARTITIONS`.
    InvalidPartitions,
    /// [`MAX_TOPICS`] topics exist.
    TooMany,
}

/// One topic's produce side.
#[derive(Debug)]
pub(super) struct TopicState {
    pub(super) name: String,
    pub(super) id: uuid::Uuid,
    /// Next offset to assign, per partition (the partition count is its length).
    pub(super) log_end: Vec<i64>,
    pub(super) stats: SinkTopicStats,
}

impl TopicState {
    pub(super) fn partitions(&self) -> usize {
        self.log_end.len()
    }
}

/// Every known topic, and the idempotent producers' next sequences.
#[derive(Debug)]
pub(super) struct Topics {
    list: Vec<TopicState>,
    index: HashMap<String, usize>,
    /// (producer id, topic index, partition) → next expected base sequence.
    next_sequence: HashMap<(i64, usize, usize), i32>,
}

/// The id of topic number `i` (stable for a server's life, never nil).
fn topic_id(i: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x6d65_7068_6973_746f_0000_0000_0000_0001 + i as u128)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Topics {
    /// The registry with the input topic (index 0).
    pub(super) fn new(input: &str, partitions: u32) -> Self {
        let mut topics = Topics {
            list: Vec::new(),
            index: HashMap::new(),
            next_sequence: HashMap::new(),
        };
        topics.insert(input, partitions.max(1) as usize);
        topics
    }

    fn insert(&mut self, name: &str, partitions: usize) -> usize {
        let i = self.list.len();
        self.list.push(TopicState {
            name: name.to_owned(),
            id: topic_id(i),
            log_end: vec![0; partitions],
            stats: SinkTopicStats::default(),
        });
        self.index.insert(name.to_owned(), i);
        i
    }

    /// The index of topic `name`.
    pub(super) fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub(super) fn get(&self, i: usize) -> Option<&TopicState> {
        self.list.get(i)
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut TopicState> {
        self.list.get_mut(i)
    }

    /// Every topic, the input first.
    pub(super) fn all(&self) -> impl Iterator<Item = &TopicState> {
        self.list.iter()
    }

    /// Creates sink topic `name` with `partitions` partitions.
    pub(super) fn create(&mut self, name: &str, partitions: i32) -> Result<usize, CreateError> {
        if self.index.contains_key(name) {
            return Err(CreateError::Exists);
        }
        if !valid_name(name) {
            return Err(CreateError::InvalidName);
        }
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(CreateError::InvalidPartitions);
        }
        if self.list.len() >= MAX_TOPICS {
            return Err(CreateError::TooMany);
        }
        Ok(self.insert(name, partitions as usize))
    }

    /// The topic `name`, created with `partitions` partitions if missing.
    pub(super) fn find_or_create(&mut self, name: &str, partitions: i32) -> Option<usize> {
        match self.create(name, partitions) {
            Ok(i) => Some(i),
            Err(_) => self.find(name),
        }
    }

    /// Records that an idempotent batch of `count` records starting at `base_sequence` was
    /// appended; `false` if its sequence does not follow the producer's previous batch.
    pub(super) fn sequence_follows(
        &mut self,
        key: (i64, usize, usize),
        base_sequence: i32,
        count: i32,
    ) -> bool {
        if self.next_sequence.len() >= MAX_SEQUENCES {
            self.next_sequence.clear();
        }
        let next = base_sequence.wrapping_add(count);
        match self.next_sequence.insert(key, next) {
            Some(expected) => expected == base_sequence,
            None => base_sequence == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_bounded_topics() {
        let mut t = Topics::new("in", 4);
        assert_eq!(t.find("in"), Some(0));
        assert_eq!(t.get(0).map(TopicState::partitions), Some(4));
        assert_eq!(t.create("in", 1), Err(CreateError::Exists));
        assert_eq!(t.create("out", 0), Err(CreateError::InvalidPartitions));
        assert_eq!(t.create("bad name", 1), Err(CreateError::InvalidName));
        assert_eq!(t.create("out", 2), Ok(1));
        assert_eq!(t.find_or_create("out", 9), Some(1));
        assert_eq!(t.get(1).map(TopicState::partitions), Some(2));
        assert_ne!(t.get(0).map(|s| s.id), t.get(1).map(|s| s.id));
        assert!(t.sequence_follows((7, 1, 0), 0, 10));
        assert!(t.sequence_follows((7, 1, 0), 10, 5));
        assert!(!t.sequence_follows((7, 1, 0), 10, 5));
        assert!(!t.sequence_follows((8, 1, 0), 3, 1));
    }
}
