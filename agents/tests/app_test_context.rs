//! The page's agents under `test_context()`: no broker, no worker; `put` waits until the
//! event is processed and returns what the agent yielded.

#[path = "../examples/agent.rs"]
#[allow(dead_code)]
mod agent;

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use mephisto::{App, Sink};

#[tokio::test]
async fn adding_answers_without_a_broker() {
    // async with adding.test_context() as agent:
    //     event = await agent.put(Add(a=4, b=4))
    let (_app, _topic, adding) = agent::define();
    let ctx = adding.test_context().expect("test context");
    assert_eq!(ctx.put(agent::Add { a: 4, b: 4 }).await.unwrap(), Some(8));
    assert_eq!(ctx.put(agent::Add { a: 2, b: 2 }).await.unwrap(), Some(4));
}

#[tokio::test]
async fn pow2_and_its_sinks_without_a_broker() {
    let app = App::new("map-reduce");
    let squares = Arc::new(Mutex::new(Vec::new()));
    let s = squares.clone();
    let pow2 = app
        .agent::<String, i64>("pow2")
        .yielding(|stream| stream.map(|x: i64| Ok(x * x)));
    pow2.add_sink(Sink::func(move |v: i64| s.lock().unwrap().push(v)));
    let ctx = pow2.test_context().expect("test context");
    for x in 1..=8 {
        assert_eq!(ctx.put(x).await.unwrap(), Some(x * x));
    }
    assert_eq!(*squares.lock().unwrap(), vec![1, 4, 9, 16, 25, 36, 49, 64]);
}

#[tokio::test]
async fn group_by_rekeys_in_memory_without_a_broker() {
    let app = App::new("groupby");
    let keys = Arc::new(Mutex::new(Vec::new()));
    let k = keys.clone();
    let stream = app
        .agent::<String, (String, f64)>("stream")
        .processing(move |s| {
            let k = k.clone();
            async move {
                let mut items = s
                    .group_by(|t: &(String, f64)| t.0.clone(), "account_id")
                    .items();
                while let Some((key, _transfer)) = items.next().await {
                    k.lock().unwrap().push(key);
                }
                Ok(())
            }
        });
    let ctx = stream.test_context().expect("test context");
    ctx.put(("a-1".to_string(), 1.0)).await.unwrap();
    ctx.put(("a-2".to_string(), 2.0)).await.unwrap();
    assert_eq!(
        *keys.lock().unwrap(),
        vec![Some("a-1".to_string()), Some("a-2".to_string())]
    );
}
