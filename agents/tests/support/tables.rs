//! The word-count app of the table tests (Mephisto's side; Faust's is
//! `peers/faust_table.py`).

use futures_util::StreamExt;
use mephisto::{App, AppAgent, Table, Topic};

/// The word-count app: `words` (keyed by the word) → `count` agent → table `counts`; a word
/// "-x" removes x.
pub struct Counting {
    /// The app.
    pub app: App,
    /// `words`, keyed by the word.
    pub words: Topic<String, String>,
    /// The table `counts`.
    pub counts: Table<String, i64>,
    _agent: AppAgent<String, String, ()>,
}

/// App `id` on `url` whose topics get `partitions` partitions.
pub fn counting(url: &str, id: &str, topic: &str, partitions: i32) -> Counting {
    let app = super::app::test_app(url, id, partitions);
    let words = app.topic::<String, String>(topic);
    let counts = app.table::<String, i64>("counts").default_value(|| 0);
    let table = counts.clone();
    let agent = app
        .agent::<String, String>("count")
        .topic(&words)
        .processing(move |mut words| {
            let table = table.clone();
            async move {
                while let Some(word) = words.next().await {
                    match word.strip_prefix('-') {
                        Some(gone) => {
                            table.remove(&gone.to_owned()).await?;
                        }
                        None => {
                            table.update(word, |n| *n += 1).await?;
                        }
                    }
                }
                Ok(())
            }
        });
    Counting {
        app,
        words,
        counts,
        _agent: agent,
    }
}

/// Sends each word keyed by itself, waiting for its acknowledgement.
pub async fn send_words(words: &Topic<String, String>, list: &[&str]) {
    for w in list {
        words
            .send(Some((*w).to_owned()), (*w).to_owned())
            .await
            .expect("send")
            .await
            .expect("acked");
    }
}
