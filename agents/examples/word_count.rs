//! Faust's `examples/word_count.py`: posts are split into words, each word is sent (keyed by
//! itself, so a word always lands on the same partition) to the `count_words` agent, which
//! counts it in the table `word_counts`.
//!
//! ```python
//! app = faust.App('word-counts', topic_partitions=8)
//! posts_topic = app.topic('posts', value_type=str)
//! word_counts = app.Table('word_counts', default=int,
//!                         help='Keep count of words (str to int).')
//!
//! @app.agent(posts_topic)
//! async def shuffle_words(posts):
//!     async for post in posts:
//!         for word in post.split():
//!             await count_words.send(key=word, value=word)
//!
//! @app.agent(value_type=str)
//! async def count_words(words):
//!     """Count words from blog post article body."""
//!     async for word in words:
//!         word_counts[word] += 1
//! ```
//!
//! `cargo run --example word_count` sends a few posts on the in-process development broker
//! (or on `MEPHISTO_BROKER` when it is set), waits until they are counted and prints the
//! table. `cargo run --example word_count -- worker -l info` runs a worker: every change of
//! the table goes to the changelog topic `word-counts-word_counts-changelog`, and a worker
//! that gets a partition recovers its counts from there first.

use std::time::Duration;

use futures_util::StreamExt;
use mephisto::{App, AppAgent, Table, Topic};

/// The app, its `posts` topic, the table and the two agents.
pub struct WordCount {
    /// The app.
    pub app: App,
    /// `posts`: string values.
    pub posts: Topic<String, String>,
    /// `word_counts`: word → count, default 0.
    pub word_counts: Table<String, i64>,
    /// `count_words`: counts each word it gets.
    pub count_words: AppAgent<String, String, ()>,
    /// `shuffle_words`: splits posts into words.
    pub shuffle_words: AppAgent<String, String, ()>,
}

/// Builds the app.
pub fn define() -> WordCount {
    let app = App::new("word-counts");
    app.configure(|s| s.topic_partitions = 8);
    let posts = app.topic::<String, String>("posts");
    let word_counts = app
        .table::<String, i64>("word_counts")
        .default_value(|| 0)
        .help("Keep count of words (str to int).");

    // @app.agent(value_type=str)
    // async def count_words(words):
    //     async for word in words:
    //         word_counts[word] += 1
    let table = word_counts.clone();
    let count_words = app
        .agent::<String, String>("count_words")
        .processing(move |mut words| {
            let table = table.clone();
            async move {
                while let Some(word) = words.next().await {
                    table.update(word, |n| *n += 1).await?;
                }
                Ok(())
            }
        });

    // @app.agent(posts_topic)
    // async def shuffle_words(posts):
    //     async for post in posts:
    //         for word in post.split():
    //             await count_words.send(key=word, value=word)
    let counter = count_words.clone();
    let shuffle_words = app
        .agent::<String, String>("shuffle_words")
        .topic(&posts)
        .processing(move |mut posts| {
            let counter = counter.clone();
            async move {
                while let Some(post) = posts.next().await {
                    for word in post.split_whitespace() {
                        counter
                            .cast_with(Some(word.to_owned()), word.to_owned(), None)
                            .await?;
                    }
                }
                Ok(())
            }
        });
    WordCount {
        app,
        posts,
        word_counts,
        count_words,
        shuffle_words,
    }
}

/// The posts of the one-process run.
pub const POSTS: [&str; 3] = [
    "the quick brown fox",
    "the lazy dog",
    "the fox jumps over the lazy dog",
];

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let wc = define();
    if std::env::args_os().len() <= 1 {
        let _ = wc.app.clone().broker_unless_env("memory://");
    }
    let (posts, table) = (wc.posts.clone(), wc.word_counts.clone());
    wc.app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        for post in POSTS {
            posts.send(None, post.to_owned()).await?.await?;
        }
        worker.wait_idle(Duration::from_secs(30)).await;
        let mut counts = table.items();
        counts.sort();
        for (word, n) in &counts {
            println!("{word:>8} {n}");
        }
        worker.stop().await?;
        Ok(())
    })
}
