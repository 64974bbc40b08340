//! The seed page's `examples/send_to_agent.py`: ask the `adding` agent of the `agent`
//! example, running in another process, and print the reply.
//!
//! ```python
//! async def send_value() -> None:
//!     print(await adding.ask(Add(a=4, b=4)))
//! ```
//!
//! ```text
//! cargo run --example agent -- worker -l info     # first console
//! cargo run --example send_to_agent               # second console: prints 8
//! ```
//!
//! `ask` adds the reply-to and correlation-id headers; the worker's agent sees them and sends
//! its result to this process's reply topic (`f-reply-<uuid>`).

#[path = "agent.rs"]
mod agent;

use agent::{define, Add};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (app, _topic, adding) = define();
    println!("{}", adding.ask(Add { a: 4, b: 4 }).await?);
    app.close().await;
    Ok(())
}
