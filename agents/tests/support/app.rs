//! An `App` with test-friendly settings: tansu completes a group join after about half the
//! session timeout, so sessions are short; commits are frequent; replies may take a while on a
//! loaded machine.

use std::time::Duration;

use mephisto::{App, Settings};

/// App `id` on `url` whose topics get `partitions` partitions.
pub fn test_app(url: &str, id: &str, partitions: i32) -> App {
    let app = App::new(id).broker(url);
    app.configure(|s: &mut Settings| {
        s.broker_session_timeout = Duration::from_secs(6);
        s.broker_heartbeat_interval = Duration::from_secs(1);
        s.broker_commit_interval = Duration::from_millis(200);
        s.topic_partitions = partitions;
        s.reply_timeout = Duration::from_secs(90);
    });
    app
}
