//! Benchmarks of Mephisto against peers: the criterion micro-benchmarks live in `benches/`, the
//! end-to-end client benchmark in `src/bin/client_bench.rs`, the agent pipeline benchmark in
//! `src/bin/agent_bench/` (its plots: `src/bin/bench_plots.rs`).
//!
//! # Layout
//! - [`workload`]: the records of the client benchmark and their checksum.
//! - [`pipeline_workload`]: the records of the agent pipeline benchmark and their check.
//! - [`replay_server`]: a loopback server that replays a pre-built topic to consumers,
//!   acknowledges produced batches without storing them, and coordinates one-member groups.
//! - [`fill`]: writing a bench's input to a topic.
//! - [`proc_stats`]: peak RSS and CPU time from `/proc`.
//! - [`tansu`]: a private tansu broker for a bench run.
//! - [`svg_plot`]: the SVG line and bar charts of `bench_plots`.

pub mod fill;
pub mod pipeline_workload;
pub mod proc_stats;
pub mod replay_server;
pub mod svg_plot;
pub mod tansu;
pub mod workload;
