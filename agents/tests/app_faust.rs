//! Mephisto and Python Faust (PyPI `faust-streaming`) ask each other's agents through a
//! private tansu: the requests carry Faust's `Faust-Ag-ReplyTo` / `Faust-Ag-CorrelationId`
//! headers and the replies are Faust's `ReqRepResponse` records, in both directions.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mephisto::App;
use serde::{Deserialize, Serialize};
use support::tansu;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn faust(url: &str, args: &[&str]) -> Command {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/install-peers.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("agents/tests/peers/faust_adding.py"))
        .args(args)
        .env("MEPHISTO_BROKER", url)
        .env(
            "FAUST_DATADIR",
            std::env::temp_dir().join(format!("mephisto-faust-{}", std::process::id())),
        )
        .stdin(Stdio::null());
    cmd
}

/// Faust's data directory for this test process (removed at the end).
fn datadir() -> PathBuf {
    std::env::temp_dir().join(format!("mephisto-faust-{}", std::process::id()))
}

fn app(url: &str, id: &str) -> App {
    support::app::test_app(url, id, 1)
}

#[tokio::test]
async fn mephisto_asks_a_faust_agent_and_faust_asks_a_mephisto_agent() {
    let broker = tansu();
    // Faust's worker runs `adding` on `faust-adding`.
    let mut faust_worker = faust(&broker.url, &["worker"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Faust worker");

    // Mephisto's worker runs its `adding` on `mephisto-adding`.
    let server = app(&broker.url, "mephisto-interop");
    let topic = server.topic::<String, Add>("mephisto-adding");
    let _adding = server
        .agent::<String, Add>("adding")
        .topic(&topic)
        .yielding(|stream| stream.map(|v: Add| Ok(v.a + v.b)));
    let worker = server.start_worker().await.expect("worker");

    // Mephisto asks Faust's agent (declared on the client side only, never run here).
    let client = app(&broker.url, "mephisto-client");
    let faust_topic = client.topic::<String, Add>("faust-adding");
    let faust_adding = client
        .agent::<String, Add>("faust_adding")
        .topic(&faust_topic)
        .yielding(|stream| stream.map(|v: Add| Ok(v.a + v.b)));
    let start = Instant::now();
    let answer: i64 = faust_adding
        .ask(Add { a: 4, b: 4 })
        .await
        .expect("Faust answers");
    assert_eq!(answer, 8);
    eprintln!("Faust answered Mephisto's ask in {:?}", start.elapsed());

    // Faust asks Mephisto's agent (a Faust worker whose task asks, prints and exits).
    let result = std::env::temp_dir().join(format!("mephisto-faust-ask-{}", std::process::id()));
    let _ = std::fs::remove_file(&result);
    let out = tokio::task::spawn_blocking({
        let url = broker.url.clone();
        let result = result.clone();
        move || {
            let mut child = faust(&url, &["ask", "20", "22"])
                .env("FAUST_RESULT", &result)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("faust ask");
            let start = Instant::now();
            while child.try_wait().expect("try_wait").is_none() {
                if start.elapsed() > Duration::from_secs(150) {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            child.wait_with_output().expect("output")
        }
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "faust ask failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = std::fs::read_to_string(&result).unwrap_or_default();
    assert_eq!(
        answer.trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&result);

    worker.stop().await.expect("stop");
    client.close().await;
    let _ = faust_worker.kill();
    let _ = faust_worker.wait();
    let _ = std::fs::remove_dir_all(datadir());
}
