//! The seed page's `examples/groupby.py`: repartition a stream of bank transfers by account
//! id, so that transfers with the same account id always reach the same agent instance.
//!
//! ```python
//! class BankTransfer(faust.Record):
//!     account_id: str
//!     amount: float
//!
//! app = faust.App('groupby')
//! topic = app.topic('groupby', value_type=BankTransfer)
//!
//! @app.agent(topic)
//! async def stream(s):
//!     async for transfer in s.group_by(BankTransfer.account_id):
//!         ...
//! ```
//!
//! `cargo run --example groupby` starts a worker in this process, sends twelve transfers
//! without a key, and prints each one as the agent receives it from the repartition topic
//! `stream-groupby-account_id-repartition`, keyed by its account id. Run
//! `cargo run --example groupby -- worker -l info` in several consoles to watch the accounts
//! spread over workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::App;
use serde::{Deserialize, Serialize};

/// A transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BankTransfer {
    account_id: String,
    amount: f64,
}

fn main() -> std::process::ExitCode {
    let app = App::new("groupby").broker_unless_env("memory://");
    let topic = app.topic::<String, BankTransfer>("groupby");
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();

    // @app.agent(topic)
    // async def stream(s):
    //     async for transfer in s.group_by(BankTransfer.account_id):
    let _stream = app
        .agent::<String, BankTransfer>("stream")
        .topic(&topic)
        .processing(move |s| {
            let counter = counter.clone();
            async move {
                let mut transfers = s
                    .group_by(|t: &BankTransfer| t.account_id.clone(), "account_id")
                    .events();
                while let Some(event) = transfers.next().await {
                    // Transfers now arrive keyed by account id: same account, same partition,
                    // same agent instance.
                    let at = event.coordinate().map(|c| c.to_string());
                    println!(
                        "transfer of {:>6.2} for {} (key {:?}) from {}",
                        event.value.amount,
                        event.value.account_id,
                        event.key.as_deref().unwrap_or("-"),
                        at.unwrap_or_default()
                    );
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });

    app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        for i in 0..12 {
            let transfer = BankTransfer {
                account_id: format!("account-{}", i % 3),
                amount: 10.0 * f64::from(i),
            };
            topic.send(None, transfer).await?.await?;
        }
        // Until the transfers went through the repartition topic to the agent.
        worker.wait_idle(Duration::from_secs(30)).await;
        println!("{} transfers received", received.load(Ordering::Relaxed));
        worker.stop().await?;
        Ok(())
    })
}
