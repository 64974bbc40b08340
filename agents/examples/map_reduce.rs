//! The seed page's "Streaming Map/Reduce" section: `map` streams replies as they come (out of
//! order), `join` waits for all of them and keeps the order; `kvmap` and `kvjoin` take
//! `(key, value)` pairs, the key being the Kafka message key.
//!
//! ```python
//! async for reply in pow2.map([1, 2, 3, 4, 5, 6, 7, 8]):
//!     print(f'RECEIVED REPLY: {reply!r}')
//!
//! results = await pow2.join([1, 2, 3, 4, 5, 6, 7, 8])
//! assert results == [1, 4, 9, 16, 25, 36, 49, 64]
//! ```
//!
//! `cargo run --example map_reduce` runs a worker with the `pow2` agent (four actors, so
//! replies really come back out of order) and prints the four calls.

use futures_util::StreamExt;
use mephisto::App;

fn main() -> std::process::ExitCode {
    let app = App::new("map-reduce").broker_unless_env("memory://");
    let pow2 = app
        .agent::<String, i64>("pow2")
        .concurrency(4)
        .yielding(|stream| stream.map(|x: i64| Ok(x * x)));

    app.main_with(|app| async move {
        let worker = app.start_worker().await?;

        let mut replies = Box::pin(pow2.map([1, 2, 3, 4, 5, 6, 7, 8]));
        while let Some(reply) = replies.next().await {
            println!("RECEIVED REPLY: {}", reply?);
        }

        let mut keyed = Box::pin(pow2.kvmap((1..=4).map(|x| (Some(format!("k{x}")), x))));
        while let Some(reply) = keyed.next().await {
            println!("RECEIVED KEYED REPLY: {}", reply?);
        }

        let results = pow2.join([1, 2, 3, 4, 5, 6, 7, 8]).await?;
        assert_eq!(results, [1, 4, 9, 16, 25, 36, 49, 64]);
        println!("join: {results:?}");

        let results = pow2
            .kvjoin([(Some("a".to_string()), 10), (Some("b".to_string()), 11)])
            .await?;
        assert_eq!(results, [100, 121]);
        println!("kvjoin: {results:?}");

        worker.stop().await?;
        Ok(())
    })
}
