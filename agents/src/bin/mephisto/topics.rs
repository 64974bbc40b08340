//! `mephisto topics create|list|delete`, over the engine's [`Admin`].

use mephisto_engine::{Admin, Cluster, NewTopic};

use crate::args::{CreateArgs, DeleteArgs, ListArgs};
use crate::error::CliError;

/// Creates the topic; returns once every partition has a leader.
pub async fn create(cluster: &Cluster, args: CreateArgs) -> Result<(), CliError> {
    let mut topic = NewTopic::new(&args.name, args.partitions, args.replication.unwrap_or(-1));
    for (key, value) in args.configs {
        topic = topic.with_config(key, value);
    }
    let created = Admin::new(cluster.clone()).create_topic(topic).await?;
    tracing::info!(topic = %created.name, partitions = args.partitions, "topic created");
    Ok(())
}

/// Prints `NAME<TAB>PARTITIONS` per topic, sorted by name.
pub async fn list(cluster: &Cluster, args: ListArgs) -> Result<(), CliError> {
    let topics = Admin::new(cluster.clone()).list_topics().await?;
    let mut out = String::new();
    for topic in topics.iter().filter(|t| args.internal || !t.internal) {
        out.push_str(&format!("{}\t{}\n", topic.name, topic.partitions.len()));
    }
    print!("{out}");
    Ok(())
}

/// Deletes the topic; returns once the metadata no longer lists it.
pub async fn delete(cluster: &Cluster, args: DeleteArgs) -> Result<(), CliError> {
    Admin::new(cluster.clone()).delete_topic(&args.name).await?;
    tracing::info!(topic = %args.name, "topic deleted");
    Ok(())
}
