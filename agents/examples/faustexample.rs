//! The seed page's first example, "Create an agent" (`faustexample.py`):
//!
//! ```python
//! app = faust.App('example', broker='kafka://localhost:9092')
//!
//! @app.agent()
//! async def myagent(stream):
//!     async for event in stream:
//!         ...  # process event
//! ```
//!
//! `cargo run --example faustexample` runs a worker and sends it three events, in one
//! process, on the in-process development broker (or on `MEPHISTO_BROKER` when it is set).
//! As on the page, a worker (`faust -A faustexample worker -l info`) and sends from another
//! console, on a shared broker (`mephisto dev-broker`, or a Kafka in `MEPHISTO_BROKER`):
//!
//! ```text
//! cargo run --example faustexample -- worker -l info
//! cargo run --example faustexample -- send @myagent '"hello"'
//! ```
//!
//! The agent reads its default topic, `example-myagent`.

use futures_util::StreamExt;
use mephisto::App;

fn main() -> std::process::ExitCode {
    let app = App::new("example");

    // @app.agent()
    // async def myagent(stream):
    //     async for event in stream:
    //         ...  # process event
    let myagent = app
        .agent::<String, serde_json::Value>("myagent")
        .processing(|mut stream| async move {
            while let Some(event) = stream.next().await {
                println!("myagent: {event}");
            }
            Ok(())
        });

    if std::env::args_os().len() <= 1 {
        // The one-process run: on the embedded broker unless MEPHISTO_BROKER is set.
        let _ = app.clone().broker_unless_env("memory://");
    }
    app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        let mut last = None;
        for event in ["first", "second", "third"] {
            last = myagent.cast(serde_json::Value::from(event)).await?;
        }
        // Until the agent has processed the last one.
        if let Some(sent) = last {
            worker
                .processed(&sent.await?, std::time::Duration::from_secs(30))
                .await;
        }
        worker.stop().await?;
        Ok(())
    })
}
