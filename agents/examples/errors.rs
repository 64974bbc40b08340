//! The seed page's "When agents raise an error" section. As in Faust, an event the agent
//! fails on is acked (not processed again), the error is logged with the event's
//! topic/partition/offset, and the agent instance is restarted by its supervisor. Beyond
//! Faust, an agent may retry an event before giving it up, and send what it gives up (and
//! records that do not decode) to a dead-letter topic, with headers naming the error.
//!
//! `cargo run --example errors` sends five orders, two of them bad, and prints what the agent
//! processed and what reached the dead-letter topic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::{App, RetryPolicy};
use serde::{Deserialize, Serialize};

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    quantity: i32,
}

fn main() -> std::process::ExitCode {
    let app = App::new("errors").broker_unless_env("memory://");
    let orders = app.topic::<String, Order>("orders");
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let _process = app
        .agent::<String, Order>("process_order")
        .topic(&orders)
        .retry(RetryPolicy::new(3, Duration::from_millis(50)))
        .dead_letter("orders-dead-letter")
        .processing(move |mut stream| {
            let counter = counter.clone();
            async move {
                while let Some(order) = stream.next().await {
                    counter.fetch_add(1, Ordering::Relaxed);
                    if order.quantity <= 0 {
                        return Err(
                            format!("order {} has quantity {}", order.id, order.quantity).into(),
                        );
                    }
                    println!("processed order {} x{}", order.id, order.quantity);
                }
                Ok(())
            }
        });
    let dead = app
        .topic::<String, String>("orders-dead-letter")
        .value_codec(mephisto::CodecName::Raw);
    let dead_seen = Arc::new(AtomicUsize::new(0));
    let seen = dead_seen.clone();
    let _dead_letters = app
        .agent::<String, String>("dead_letters")
        .topic(&dead)
        .processing(move |stream| {
            let seen = seen.clone();
            async move {
                let mut events = stream.events();
                while let Some(event) = events.next().await {
                    let error = event
                        .header("mephisto-error")
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    println!("dead letter {:?}: {error}", event.value);
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });

    app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        let raw = app
            .topic::<String, String>("orders")
            .value_codec(mephisto::CodecName::Raw);
        for (id, quantity) in [(1, 2), (2, 0), (3, 5)] {
            orders.send(None, Order { id, quantity }).await?.await?;
        }
        raw.send(None, "not an order".to_string()).await?.await?;
        orders
            .send(None, Order { id: 5, quantity: 1 })
            .await?
            .await?;
        // Until the orders, their retries and the dead letters are processed.
        worker.wait_idle(Duration::from_secs(60)).await;
        println!(
            "{} attempts, {} dead letters",
            done.load(Ordering::Relaxed),
            dead_seen.load(Ordering::Relaxed)
        );
        worker.stop().await?;
        Ok(())
    })
}
