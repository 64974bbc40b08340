//! The seed page's "Cast or Ask?" section: `cast` sends without waiting for a reply, `ask`
//! waits for the agent's reply, and `send` with `reply_to` has the reply go to another
//! agent's topic.
//!
//! ```python
//! await adder.cast(Add(a=2, b=2))                 # no reply
//! value = await adder.ask(Add(a=2, b=2))          # 4
//! await adder.send(value=Add(a=2, b=2), reply_to=another_agent)
//! ```
//!
//! `cargo run --example cast_ask` runs a worker in this process and prints each step. The
//! reply sent to `another_agent` is Faust's `ReqRepResponse` record (key, value,
//! correlation id), so Faust agents can be on either side.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::reqrep::ReqRepResponse;
use mephisto::{App, AskOptions};
use serde::{Deserialize, Serialize};

/// The request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn main() -> std::process::ExitCode {
    let app = App::new("cast-ask").broker_unless_env("memory://");
    let adds = Arc::new(AtomicUsize::new(0));
    let counter = adds.clone();
    let adder = app.agent::<String, Add>("adder").yielding(move |stream| {
        let counter = counter.clone();
        stream.map(move |value: Add| {
            counter.fetch_add(1, Ordering::Relaxed);
            println!("adder: {} + {}", value.a, value.b);
            Ok(value.a + value.b)
        })
    });
    let replies = Arc::new(AtomicUsize::new(0));
    let seen = replies.clone();
    let another_agent = app
        .agent::<String, ReqRepResponse<String, i64>>("another_agent")
        .processing(move |mut stream| {
            let seen = seen.clone();
            async move {
                while let Some(reply) = stream.next().await {
                    println!(
                        "another_agent got the reply {} (correlation id {})",
                        reply.value, reply.correlation_id
                    );
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });

    app.main_with(|app| async move {
        let worker = app.start_worker().await?;

        // cast(value): the agent receives it and does not reply.
        adder.cast(Add { a: 2, b: 2 }).await?;
        println!("cast sent");

        // ask(value): the reply comes back to this process.
        let value = adder.ask(Add { a: 2, b: 2 }).await?;
        assert_eq!(value, 4);
        println!("ask answered {value}");

        // send(value, reply_to=another_agent)
        let reply_to = another_agent.topic_name().map(str::to_owned);
        adder
            .send(
                None,
                Add { a: 2, b: 2 },
                AskOptions {
                    reply_to,
                    ..AskOptions::default()
                },
            )
            .await?;
        // Until the reply reached another_agent.
        worker.wait_idle(Duration::from_secs(30)).await;
        println!(
            "adder added {} times, another_agent got {} reply",
            adds.load(Ordering::Relaxed),
            replies.load(Ordering::Relaxed)
        );
        worker.stop().await?;
        Ok(())
    })
}
