//! The seed page's "Sinks" section: what an agent yields also goes to a function, an async
//! function, a topic and another agent.
//!
//! ```python
//! def mysink(value):
//!     print(f'AGENT YIELD: {value!r}')
//!
//! async def mysink_async(value):
//!     print(f'AGENT YIELD: {value!r}')
//!     await asyncio.sleep(1)   # holds the yielding agent instance for a second
//!
//! agent_log_topic = app.topic('agent_log')
//!
//! @app.agent()
//! async def agent_b(stream):
//!     async for event in stream:
//!         print(f'AGENT B RECEIVED: {event!r}')
//!
//! @app.agent(sink=[mysink, mysink_async, agent_log_topic, agent_b])
//! async def agent_a(stream):
//!     async for event in stream:
//!         print(f'AGENT A RECEIVED: {event!r}')
//!         yield event
//! ```
//!
//! `cargo run --example sinks` casts three values to `agent_a` and prints what each sink sees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::{App, Sink};

fn main() -> std::process::ExitCode {
    let app = App::new("sinks").broker_unless_env("memory://");

    // Function callback.
    let mysink = Sink::func(|value: String| println!("AGENT YIELD: {value:?}"));
    // Async function callback: the agent instance that yielded waits for it.
    let mysink_async = Sink::async_func(|value: String| async move {
        println!("AGENT YIELD (async): {value:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    // Topic: every processed value is forwarded to 'agent_log'.
    let agent_log_topic = app.topic::<String, String>("agent_log");

    // Another agent.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let agent_b = app
        .agent::<String, String>("agent_b")
        .processing(move |mut stream| {
            let counter = counter.clone();
            async move {
                while let Some(event) = stream.next().await {
                    println!("AGENT B RECEIVED: {event:?}");
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });

    // @app.agent(sink=[mysink, mysink_async, agent_log_topic, agent_b])
    let agent_a = app.agent::<String, String>("agent_a").yielding_to(
        vec![
            mysink,
            mysink_async,
            agent_log_topic.sink(),
            agent_b.as_sink(),
        ],
        |stream| {
            stream.map(|event: String| {
                println!("AGENT A RECEIVED: {event:?}");
                Ok(event)
            })
        },
    );

    app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        for word in ["alpha", "beta", "gamma"] {
            agent_a.cast(word.to_string()).await?;
        }
        // Until agent_a's values went through every sink and agent_b read them.
        worker.wait_idle(Duration::from_secs(30)).await;
        println!("agent_b received {}", received.load(Ordering::Relaxed));
        worker.stop().await?;
        Ok(())
    })
}
