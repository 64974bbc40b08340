//! [`TopicPartition`]: a topic and a partition number, the key of every per-partition map in
//! the assignors, the membership events, the offset tracker and the engine (which re-exports
//! it).

use std::fmt;
use std::sync::Arc;

/// A topic (shared name: cloning one is a reference-count increment) and a partition number.
///
/// Ordered by topic name, then partition; displayed as `topic-partition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic` (an `Arc<str>` is taken as is, a `&str` or `String`
    /// copied once).
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_topic_then_partition_and_displays_topic_dash_partition() {
        let mut v = [
            TopicPartition::new("b", 0),
            TopicPartition::new("a", 10),
            TopicPartition::new("a", 2),
        ];
        v.sort();
        let shown: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a-2", "a-10", "b-0"]);
        let shared: Arc<str> = Arc::from("t");
        let tp = TopicPartition::new(Arc::clone(&shared), 1);
        assert!(
            Arc::ptr_eq(&tp.topic, &shared),
            "an Arc<str> topic is not copied"
        );
    }
}
