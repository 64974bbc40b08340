//! What every Mephisto app of the bench shares: its settings, and the output sink (with the
//! `--mephisto-sink spawn` diagnostic).

use std::time::Duration;

use mephisto::{App, Sink, Topic};

use crate::options::Options;

/// Session timeout of every group member (tansu completes a join after about half of it).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// Heartbeat interval of every group member.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The bench's settings: broker, partitions, session timeout and heartbeat, and the fetch wait
/// of `--fetch-wait-ms`. Everything else stays at Mephisto's (Faust's) defaults.
pub fn configure(app: &App, o: &Options) {
    let broker = o.broker_url.clone();
    let partitions = o.partitions as i32;
    let fetch_wait = o.fetch_wait_ms;
    app.configure(|s| {
        s.broker = broker;
        s.topic_partitions = partitions;
        s.broker_session_timeout = SESSION_TIMEOUT;
        s.broker_heartbeat_interval = HEARTBEAT;
        if let Some(ms) = fetch_wait {
            s.consumer_fetch_max_wait = Duration::from_millis(ms);
        }
    });
}

/// `topic.sink()`, or with `--mephisto-sink spawn` (diagnostic) a function sink spawning each
/// send: the actor does not wait for the acknowledgement and the event is acked before its
/// output is written (not the same guarantee).
pub fn topic_sink<K: mephisto::app::Model, V: mephisto::app::Model>(
    topic: &Topic<K, V>,
    kind: &str,
) -> Sink<V> {
    if kind != "spawn" {
        return topic.sink();
    }
    let topic = topic.clone();
    Sink::func(move |value: V| {
        let topic = topic.clone();
        tokio::spawn(async move {
            if let Err(e) = topic.send(None, value).await {
                eprintln!("spawned sink send failed: {e}");
            }
        });
    })
}
