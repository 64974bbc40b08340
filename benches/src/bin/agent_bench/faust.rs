//! Role `faust-pipeline`: faust-streaming running the same pipeline
//! (`benches/peers/faust_pipeline.py`), started with `--python` (default `.venv/bin/python`
//! of the repository). It speaks the child protocol of [`crate::child`]; its clock starts at
//! the first input record its agent sees, like the others'.

use std::path::PathBuf;
use std::process::Command;

use mephisto_benches::tansu::BoxError;
use mephisto_test_support::process::repo_root;

use crate::options::{ChildTopics, Options};
use crate::process::{spawn, Running};

/// The peer script.
pub fn script() -> PathBuf {
    repo_root().join("benches/peers/faust_pipeline.py")
}

fn python(o: &Options) -> PathBuf {
    let path = PathBuf::from(&o.python);
    if path.is_absolute() || !path.starts_with(".venv") {
        path
    } else {
        repo_root().join(path)
    }
}

/// The Faust worker's data directory for group `group` (removed by [`cleanup`]).
fn datadir(group: &str) -> PathBuf {
    std::env::temp_dir().join(format!("agent-bench-faust-{group}"))
}

/// Starts the Faust worker on `topics` for `variant`.
pub fn start(o: &Options, variant: &str, topics: &ChildTopics) -> Result<Running, BoxError> {
    let mut command = Command::new(python(o));
    command
        .arg(script())
        .args(["--broker", &o.broker_url])
        .args(["--input", &topics.input])
        .args(["--output", &topics.output])
        .args(["--group", &topics.group])
        .args(["--partitions", &topics.partitions.to_string()])
        .args(["--variant", variant])
        .args(["--timeout", &o.timeout.as_secs().to_string()])
        .arg("--datadir")
        .arg(datadir(&topics.group))
        .env("PYTHONUNBUFFERED", "1");
    spawn(&mut command).map_err(|e| format!("cannot start {}: {e}", python(o).display()).into())
}

/// Removes the worker's data directory.
pub fn cleanup(topics: &ChildTopics) {
    let _ = std::fs::remove_dir_all(datadir(&topics.group));
}
