//! The broker for the agents' tests and helpers to run the `mephisto` binary and the Python
//! peers: thin over `mephisto-test-support` (see its docs for which broker: `MEPHISTO_BROKER`,
//! else a private `mephisto dev-broker` with `MEPHISTO_TEST_BROKER=dev`, else a private tansu,
//! stopped when the handle drops).
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod tables;
pub mod topics;

use std::path::{Path, PathBuf};
use std::process::Output;

pub use mephisto_test_support::peers::{faust_log, faust_worker, python, PeerProcess};
pub use mephisto_test_support::{eventually, is_dev_broker, unique};

/// A broker for one test.
pub type Tansu = mephisto_test_support::Broker;

/// The `mephisto` binary under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mephisto"))
}

/// `target/<profile>/examples/<name>`, built by `cargo test` next to this test binary.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "example {name} not built at {}",
        path.display()
    );
    path
}

/// The broker for a test: `MEPHISTO_BROKER`, else a private `mephisto dev-broker` with
/// `MEPHISTO_TEST_BROKER=dev`, else a private tansu.
pub fn tansu() -> Tansu {
    mephisto_test_support::test_broker(|| mephisto_test_support::dev_broker_cli(bin(), &[]))
}

/// A private `mephisto dev-broker`, whatever `MEPHISTO_TEST_BROKER` says: for tests that need
/// Kafka's group behaviour where tansu differs (tansu keeps a group's assignor protocol after
/// its members are gone, so a Faust app and a Mephisto app cannot take turns on one group id).
pub fn dev_broker() -> Tansu {
    mephisto_test_support::dev_broker_cli(bin(), &[])
}

/// Runs `mephisto --broker URL ARGS...` with `stdin`.
pub fn mephisto(broker: &str, args: &[&str], stdin: &[u8]) -> Output {
    mephisto_test_support::peers::cli(bin(), broker, args, stdin)
}

/// Like [`mephisto`], panicking unless it succeeds; returns stdout.
pub fn mephisto_ok(broker: &str, args: &[&str], stdin: &[u8]) -> String {
    mephisto_test_support::peers::cli_ok(bin(), broker, args, stdin)
}
