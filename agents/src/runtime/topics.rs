//! [`TopicSpec`]: what the runtime needs to create a topic, whatever its types.

/// A topic to create when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions when created (`None`: the app's `topic_partitions`).
    pub partitions: Option<i32>,
    /// Topic configs when created (e.g. `cleanup.policy=compact`).
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// `name` with the app's default partitions and no configs.
    pub fn named(name: impl Into<String>) -> Self {
        TopicSpec {
            name: name.into(),
            partitions: None,
            configs: Vec::new(),
        }
    }
}
