//! The quickstart demo: the Agents page end to end, in one process, on the in-process
//! development broker (nothing to install):
//!
//! ```text
//! cargo run -p mephisto-agents --example demo
//! ```
//!
//! It starts a worker with the page's agents and prints what happens:
//! * `adding` (the page's full example) answers `ask`s; what it yields also goes to a
//!   function sink, a topic sink (`adding-log`, read by `log_reader`) and an agent sink
//!   (`audit`);
//! * `pow2` answers `map` (replies as they come) and `join` (replies in order);
//! * `transfers` re-partitions bank transfers by account with `group_by`: each account's
//!   transfers arrive keyed by the account, in one partition, at one agent instance.
//!
//! With `MEPHISTO_BROKER=kafka://host:port` the same demo runs against a real broker (the
//! tests run it against tansu).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::{App, Sink};
use serde::{Deserialize, Serialize};

/// The page's model: two integers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// The groupby example's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BankTransfer {
    account_id: String,
    amount: f64,
}

fn main() -> std::process::ExitCode {
    let app = App::new("demo").broker_unless_env("memory://");
    app.configure(|s| s.topic_partitions = 4);

    // Sinks of `adding`: a function, a topic, another agent.
    let audited = Arc::new(AtomicUsize::new(0));
    let counter = audited.clone();
    let audit = app
        .agent::<String, i64>("audit")
        .processing(move |mut stream| {
            let counter = counter.clone();
            async move {
                while let Some(sum) = stream.next().await {
                    println!("  audit (agent sink) got {sum}");
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });
    let adding_log = app.topic::<String, i64>("adding-log");
    let logged = Arc::new(AtomicUsize::new(0));
    let counter = logged.clone();
    let _log_reader = app
        .agent::<String, i64>("log_reader")
        .topic(&adding_log)
        .processing(move |stream| {
            let counter = counter.clone();
            async move {
                let mut events = stream.events();
                while let Some(event) = events.next().await {
                    let at = event.coordinate().map(|c| c.to_string());
                    println!(
                        "  log_reader read {} from {} (topic sink)",
                        event.value,
                        at.unwrap_or_default()
                    );
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });

    // The page's agent: `async def adding(stream): async for value in stream: yield a + b`.
    let topic = app.topic::<String, Add>("adding");
    let sinks = vec![
        Sink::func(|sum: i64| println!("  function sink got {sum}")),
        adding_log.sink(),
        audit.as_sink(),
    ];
    let adding = app
        .agent::<String, Add>("adding")
        .topic(&topic)
        .yielding_to(sinks, |stream| {
            stream.map(|value: Add| {
                println!("  adding: {} + {}", value.a, value.b);
                Ok(value.a + value.b)
            })
        });

    let pow2 = app
        .agent::<String, i64>("pow2")
        .concurrency(4)
        .yielding(|stream| stream.map(|x: i64| Ok(x * x)));

    let transfers_topic = app.topic::<String, BankTransfer>("transfers");
    let regrouped = Arc::new(AtomicUsize::new(0));
    let counter = regrouped.clone();
    let _transfers = app
        .agent::<String, BankTransfer>("transfers")
        .topic(&transfers_topic)
        .processing(move |stream| {
            let counter = counter.clone();
            async move {
                let mut events = stream
                    .group_by(|t: &BankTransfer| t.account_id.clone(), "account_id")
                    .events();
                while let Some(event) = events.next().await {
                    let partition = event.message().map(|m| m.partition);
                    println!(
                        "  transfers: {:>6.2} for {} arrived keyed {:?} in partition {:?}",
                        event.value.amount,
                        event.value.account_id,
                        event.key.as_deref().unwrap_or("-"),
                        partition.unwrap_or(-1)
                    );
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });

    app.main_with(|app| async move {
        println!(
            "starting a worker of app `demo` on {}",
            app.broker_url().await?
        );
        let worker = app.start_worker().await?;

        println!("\n1. ask the adding agent: adding.ask(Add(a=4, b=4))");
        let sum = adding.ask(Add { a: 4, b: 4 }).await?;
        println!("=> {sum}");

        println!("\n2. cast without waiting: adding.cast(Add(a=2, b=2))");
        adding.cast(Add { a: 2, b: 2 }).await?;
        // Until the cast went through the sinks and their readers.
        worker.wait_idle(Duration::from_secs(30)).await;
        println!(
            "   audit saw {}, log_reader saw {}",
            audited.load(Ordering::Relaxed),
            logged.load(Ordering::Relaxed)
        );

        println!("\n3. pow2.map([1..8]): replies as they come");
        let mut replies = Box::pin(pow2.map(1..=8));
        let mut got = Vec::new();
        while let Some(reply) = replies.next().await {
            got.push(reply?);
        }
        println!("=> {got:?}");
        println!("   pow2.join([1..8]): replies in order");
        println!("=> {:?}", pow2.join(1..=8).await?);

        println!("\n4. group_by: six transfers sent without a key, regrouped by account");
        for i in 0..6 {
            let transfer = BankTransfer {
                account_id: format!("account-{}", i % 2),
                amount: 10.0 * f64::from(i + 1),
            };
            transfers_topic.send(None, transfer).await?;
        }
        worker.wait_idle(Duration::from_secs(30)).await;
        println!("   {} regrouped", regrouped.load(Ordering::Relaxed));

        println!("\nstopping the worker (finishes in-flight events, commits, leaves the group)");
        worker.stop().await?;
        Ok(())
    })
}
