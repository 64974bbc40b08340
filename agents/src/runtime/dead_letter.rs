//! [`DeadLetter`]: where an agent's failed records go (not in Faust, which only logs them):
//! the record as it was read (raw key, value and headers), plus headers naming the error, the
//! agent and the source coordinate. Sent and acknowledged before the source event is acked.

use std::sync::Arc;

use bytes::Bytes;

use crate::core::event::{Coordinate, Message};
use crate::runtime::writes::ClientSource;

/// Header naming the error of a dead-lettered record.
pub const DEAD_LETTER_ERROR_HEADER: &str = "mephisto-error";
/// Header naming the agent that gave the record up.
pub const DEAD_LETTER_AGENT_HEADER: &str = "mephisto-agent";
/// Header giving the record's source as `topic[partition]@offset`.
pub const DEAD_LETTER_SOURCE_HEADER: &str = "mephisto-source";

/// An agent's dead-letter topic.
#[derive(Clone)]
pub struct DeadLetter {
    source: Arc<dyn ClientSource>,
    topic: Arc<str>,
    agent: Arc<str>,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("topic", &self.topic)
            .field("agent", &self.agent)
            .finish()
    }
}

impl DeadLetter {
    /// `agent`'s dead-letter topic `topic`.
    pub fn new(source: Arc<dyn ClientSource>, topic: &str, agent: &str) -> Self {
        DeadLetter {
            source,
            topic: Arc::from(topic),
            agent: Arc::from(agent),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends the fetched record of `message` with the error headers.
    pub async fn send_message(&self, message: &Message, error: &str) {
        let headers = message
            .record
            .headers()
            .map(|h| {
                (
                    String::from_utf8_lossy(h.key()).into_owned(),
                    h.value_bytes(),
                )
            })
            .collect();
        self.send(
            message.record.key_bytes(),
            message.record.value_bytes(),
            headers,
            Some(&message.coordinate()),
            error,
        )
        .await;
    }

    /// Sends `key`/`value` with `headers` plus the error headers, and waits for the broker's
    /// acknowledgement (failures are logged: the event is given up either way).
    pub async fn send(
        &self,
        key: Option<Bytes>,
        value: Option<Bytes>,
        mut headers: Vec<(String, Option<Bytes>)>,
        source: Option<&Coordinate>,
        error: &str,
    ) {
        headers.push((
            DEAD_LETTER_ERROR_HEADER.into(),
            Some(Bytes::from(error.to_owned())),
        ));
        headers.push((
            DEAD_LETTER_AGENT_HEADER.into(),
            Some(Bytes::from(self.agent.to_string())),
        ));
        if let Some(c) = source {
            headers.push((
                DEAD_LETTER_SOURCE_HEADER.into(),
                Some(Bytes::from(c.to_string())),
            ));
        }
        let sent = match self.source.client().await {
            Ok(client) => client
                .produce(&self.topic, None, key, value, headers)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(md) => tracing::warn!(
                agent = %self.agent, dead_letter = %self.topic, partition = md.partition, offset = md.offset,
                source = %source.map(|c| c.to_string()).unwrap_or_default(),
                "record sent to the dead-letter topic"
            ),
            Err(e) => tracing::error!(
                agent = %self.agent, dead_letter = %self.topic, error = %e,
                "could not send a failed record to the dead-letter topic"
            ),
        }
    }
}
