//! The `mephisto` command line.
//!
//! Only `--version` and `--help` exist so far; the topic, produce and consume commands arrive
//! with the engine, the worker with the agents layer.

use std::process::ExitCode;

const USAGE: &str = "usage: mephisto [--version | --help]\n\
no other command is implemented yet: the engine commands (topics, produce, consume) are next";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("mephisto {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        None | Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("mephisto: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
