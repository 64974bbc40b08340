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
//! Start a worker (`faust -A faustexample worker -l info`):
//!
//! ```text
//! cargo run --example faustexample -- worker -l info
//! cargo run --example faustexample -- send @myagent '"hello"'
//! ```
//!
//! The broker is `MEPHISTO_BROKER` (default `kafka://127.0.0.1:9092`); `-b URL` overrides it.
//! The agent reads its default topic, `example-myagent`.

use futures_util::StreamExt;
use mephisto::App;

fn main() -> std::process::ExitCode {
    let app = App::new("example");

    // @app.agent()
    // async def myagent(stream):
    //     async for event in stream:
    //         ...  # process event
    let _myagent = app
        .agent::<String, serde_json::Value>("myagent")
        .processing(|mut stream| async move {
            while let Some(event) = stream.next().await {
                println!("myagent: {event}");
            }
            Ok(())
        });

    app.main()
}
