//! The parent side of the child protocol: start a child (this binary with `--role`, or the
//! Faust peer), tell it to report, wait for it within a limit (then kill it), parse its
//! `RESULT` line.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use mephisto_benches::tansu::BoxError;

use crate::child::Outcome;

/// A running child: its stdin (a line = "stop and report") and its stdout reader.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

/// Starts this binary again with `args`; under `$AGENT_BENCH_CHILD_WRAPPER` (a command and its
/// arguments, split at spaces: `perf record -g -o child.data`, `heaptrack`) when it is set, so
/// that a profiler sees the child alone.
pub fn spawn_self(args: Vec<String>) -> Result<Running, BoxError> {
    let exe = std::env::current_exe()?;
    match std::env::var("AGENT_BENCH_CHILD_WRAPPER") {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            let mut words = wrapper.split_whitespace();
            let program = words.next().unwrap_or_default();
            spawn(Command::new(program).args(words).arg(exe).args(args))
        }
        _ => spawn(Command::new(exe).args(args)),
    }
}

/// Starts `command` with piped stdin and stdout (stderr goes to ours).
pub fn spawn(command: &mut Command) -> Result<Running, BoxError> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take();
    let mut stdout = child.stdout.take().ok_or("no child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    Ok(Running {
        child,
        stdin,
        stdout: Some(reader),
    })
}

impl Running {
    /// Asks the child to report, waits for it (at most `limit`, then kills it) and parses its
    /// result.
    pub fn finish(mut self, limit: Duration) -> Result<Outcome, BoxError> {
        if let Some(mut stdin) = self.stdin.take() {
            // A child that already finished has closed its end: nothing to tell it.
            let _ = stdin.write_all(b"stop\n");
        }
        let until = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("child did not finish in time; killed".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = self
            .stdout
            .take()
            .ok_or("stdout already read")?
            .join()
            .map_err(|_| "stdout reader panicked")?;
        if !status.success() {
            let last: Vec<&str> = text.lines().rev().take(3).collect();
            return Err(format!("child failed ({status}): {}", last.join(" | ")).into());
        }
        Outcome::parse(&text).ok_or_else(|| format!("no RESULT line in {text:?}").into())
    }

    /// Whether the child has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A child not finished (an error on the way) must not outlive the run.
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
