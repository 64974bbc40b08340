//! The examples that mirror the seed page, run as a user runs them, each against a private
//! tansu: `agent` as a worker process asked by `send_to_agent` (and by the app's own `send`
//! command), and every self-contained demo, checking what it prints.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{example, tansu};

/// Runs example `name` on `url` (`None`: no `MEPHISTO_BROKER`, so the embedded broker).
fn run_on(name: &str, url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(example(name));
    match url {
        Some(url) => cmd.env("MEPHISTO_BROKER", url),
        None => cmd.env_remove("MEPHISTO_BROKER"),
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start example");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "example {name} {args:?} did not finish within 120 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(name: &str, url: &str, args: &[&str]) -> Output {
    run_on(name, Some(url), args)
}

fn run_ok_on(name: &str, url: Option<&str>, args: &[&str]) -> String {
    let out = run_on(name, url, args);
    assert!(
        out.status.success(),
        "example {name} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn run_ok(name: &str, url: &str, args: &[&str]) -> String {
    run_ok_on(name, Some(url), args)
}

#[test]
fn with_nothing_configured_the_examples_run_on_the_embedded_broker() {
    assert_eq!(run_ok_on("agent", None, &[]).trim(), "8");
    let out = run_ok_on("faustexample", None, &[]);
    assert_eq!(out.matches("myagent: ").count(), 3, "{out}");
    let demo = run_ok_on("demo", None, &[]);
    assert!(demo.contains("=> 8"), "{demo}");
    assert!(demo.contains("=> [1, 4, 9, 16, 25, 36, 49, 64]"), "{demo}");
    assert_eq!(demo.matches("  transfers: ").count(), 6, "{demo}");
    assert_eq!(demo.matches("audit (agent sink) got").count(), 2, "{demo}");
    assert_eq!(demo.matches("log_reader read").count(), 2, "{demo}");
}

#[test]
fn agent_worker_answers_send_to_agent_and_its_own_send_command() {
    let broker = tansu();
    let mut worker = Command::new(example("agent"))
        .args(["worker", "-l", "info"])
        .env("MEPHISTO_BROKER", &broker.url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the worker");
    let asked = run_ok("send_to_agent", &broker.url, &[]);
    assert_eq!(asked.trim(), "8");
    let sent = run_ok(
        "agent",
        &broker.url,
        &["send", "@adding", r#"{"a": 1, "b": 2}"#],
    );
    assert!(sent.contains("\"topic\": \"adding\""), "{sent}");
    let bad = run("agent", &broker.url, &["send", "@adding", "not json"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be JSON"));
    let agents = run_ok("agent", &broker.url, &["agents"]);
    assert!(
        agents
            .lines()
            .any(|l| l.starts_with("adding") && l.contains("adding")),
        "{agents}"
    );
    // SIGTERM: the worker commits, leaves and exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "worker did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "worker exit: {status}");
}

#[test]
fn map_reduce_prints_replies_and_ordered_joins() {
    let broker = tansu();
    let out = run_ok("map_reduce", &broker.url, &[]);
    assert_eq!(out.matches("RECEIVED REPLY:").count(), 8, "{out}");
    assert_eq!(out.matches("RECEIVED KEYED REPLY:").count(), 4, "{out}");
    assert!(out.contains("join: [1, 4, 9, 16, 25, 36, 49, 64]"), "{out}");
    assert!(out.contains("kvjoin: [100, 121]"), "{out}");
}

#[test]
fn cast_ask_and_reply_to_another_agent() {
    let broker = tansu();
    let out = run_ok("cast_ask", &broker.url, &[]);
    assert!(out.contains("ask answered 4"), "{out}");
    assert_eq!(out.matches("adder: 2 + 2").count(), 3, "{out}");
    assert!(out.contains("another_agent got the reply 4"), "{out}");
}

#[test]
fn groupby_regroups_transfers_by_account() {
    let broker = tansu();
    let out = run_ok("groupby", &broker.url, &[]);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("transfer")).collect();
    assert_eq!(lines.len(), 12, "{out}");
    for line in lines {
        let acct = line
            .split(" for ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        assert!(line.contains(&format!("(key \"{acct}\")")), "{line}");
        assert!(
            line.contains("stream-groupby-account_id-repartition["),
            "{line}"
        );
    }
}

#[test]
fn sinks_reach_function_async_topic_and_agent() {
    let broker = tansu();
    let out = run_ok("sinks", &broker.url, &[]);
    for word in ["alpha", "beta", "gamma"] {
        assert!(
            out.contains(&format!("AGENT A RECEIVED: \"{word}\"")),
            "{out}"
        );
        assert!(out.contains(&format!("AGENT YIELD: \"{word}\"")), "{out}");
        assert!(
            out.contains(&format!("AGENT YIELD (async): \"{word}\"")),
            "{out}"
        );
        assert!(
            out.contains(&format!("AGENT B RECEIVED: \"{word}\"")),
            "{out}"
        );
    }
}

#[test]
fn concurrency_stores_every_article() {
    let broker = tansu();
    let out = run_ok("concurrency", &broker.url, &[]);
    assert_eq!(out.matches("stored https://").count(), 30, "{out}");
    assert!(out.contains("30 articles stored"), "{out}");
}

#[test]
fn errors_are_acked_retried_and_dead_lettered() {
    let broker = tansu();
    let out = run_ok("errors", &broker.url, &[]);
    for id in [1, 3, 5] {
        assert!(out.contains(&format!("processed order {id} ")), "{out}");
    }
    assert!(out.contains("order 2 has quantity 0"), "{out}");
    assert!(out.contains("dead letter \"not an order\""), "{out}");
}

#[test]
fn word_count_counts_every_word_in_its_table() {
    let broker = tansu();
    let out = run_ok("word_count", &broker.url, &[]);
    for line in ["     the 4", "     fox 2", "    lazy 2", "   quick 1"] {
        assert!(out.lines().any(|l| l == line), "{line:?} in {out}");
    }
    // A second run of the same app recovers the counts from the changelog and counts on.
    let out = run_ok("word_count", &broker.url, &[]);
    assert!(out.lines().any(|l| l == "     the 8"), "{out}");
}

#[test]
fn page_views_counts_views_per_page_in_tumbling_windows() {
    let broker = tansu();
    let out = run_ok("page_views", &broker.url, &[]);
    for line in ["  home 3 ", " about 1 "] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "{line:?} in {out}"
        );
    }
}
