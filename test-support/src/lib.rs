//! Dev-only helpers shared by Mephisto's integration tests and benches (`publish = false`; a
//! dev-dependency of the engine and the agents, a dependency of the benches, never in the
//! product tree).
//!
//! # Which broker
//! [`test_broker`] picks the broker a test runs against: the one `MEPHISTO_BROKER` names if it
//! is set, else the development broker when `MEPHISTO_TEST_BROKER=dev` (started the way the
//! caller says: [`dev_broker_thread`] in-process, or [`dev_broker_cli`] as a `mephisto
//! dev-broker` process), else a private [`tansu()`] (`$TANSU_BIN` or `.tools/bin/tansu` from
//! `scripts/install-peers.sh`, with the command line of `scripts/tansu.sh`).
//! [`shared_broker`] keeps one per test binary. A [`Broker`] stops its broker when dropped; a
//! watchdog shell also kills a broker process if the test process dies without unwinding.
//! Without a tansu binary the tests fail, they never skip.
//!
//! # Layout
//! - [`broker`]: the [`Broker`] handle.
//! - [`tansu`](mod@tansu): a private tansu on a free loopback port.
//! - [`dev`]: the development broker on a thread of its own, or as a `mephisto dev-broker`
//!   process.
//! - [`choose`]: which broker a test uses (`MEPHISTO_BROKER`, `MEPHISTO_TEST_BROKER`), one per
//!   test or one per test binary.
//! - [`probe`]: does a Kafka broker answer ApiVersions (plain std I/O, no Mephisto code).
//! - [`process`]: free loopback ports, the repository root, watchdog shells.
//! - [`poll`]: waiting for a condition until a deadline (blocking and async).
//! - [`names`]: topic and group names unique to the process.
//! - [`scratch`]: a directory for one test, removed when dropped.
//! - [`peers`]: the `mephisto` CLI and the Python peers (`.venv`) as child processes.
//! - [`fake`]: a scriptable fake broker and a silent listener, for faults a real broker does not
//!   produce on demand.
//! - [`heap_stats`]: a counting global allocator (allocations, live and peak heap bytes), for
//!   allocation tests and the bench binaries; the only module with `unsafe` (the
//!   `GlobalAlloc` impl, forwarding to `System`).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod broker;
pub mod choose;
pub mod dev;
pub mod fake;
#[allow(unsafe_code)]
pub mod heap_stats;
pub mod names;
pub mod peers;
pub mod poll;
pub mod probe;
pub mod process;
pub mod scratch;
pub mod tansu;

pub use broker::Broker;
pub use choose::{is_dev_broker, shared_broker, test_broker};
pub use dev::{dev_broker_cli, dev_broker_thread};
pub use names::unique;
pub use poll::{eventually, wait_until, wait_until_async};
pub use process::free_port;
pub use scratch::ScratchDir;
pub use tansu::{tansu, try_tansu};
