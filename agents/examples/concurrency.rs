//! The seed page's concurrency example: an agent with `concurrency=10` importing news
//! articles out of order.
//!
//! ```python
//! class Article(faust.Record, isodates=True):
//!     url: str
//!     date_published: datetime
//!
//! news_topic = app.topic('news', value_type=Article)
//!
//! @app.agent(news_topic, concurrency=10)
//! async def imports_news(articles):
//!     async for article in articles:
//!         async with app.http_client.get(article.url) as response:
//!             await store_article_in_db(response)
//! ```
//!
//! Mephisto has no HTTP client: `fetch_article` stands in for the request (a delay that
//! varies per article) and `store_article_in_db` for the database (a map in memory). The ten
//! actors finish articles out of order; the offsets committed are only those of the
//! contiguous prefix of stored articles, so a crash never skips an article.
//! `cargo run --example concurrency` runs it on 30 articles and prints each store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::App;
use serde::{Deserialize, Serialize};

/// A published article.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Article {
    url: String,
    /// ISO 8601 date (Faust's `isodates=True`).
    date_published: String,
}

type Db = Arc<Mutex<BTreeMap<String, String>>>;

/// Stands in for `app.http_client.get(article.url)`.
async fn fetch_article(article: &Article, n: u64) -> String {
    tokio::time::sleep(Duration::from_millis(20 + (n * 37) % 100)).await;
    format!("<html>body of {}</html>", article.url)
}

/// Stands in for the database write.
async fn store_article_in_db(db: &Db, url: &str, body: String) {
    db.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(url.to_owned(), body);
}

fn main() -> std::process::ExitCode {
    let app = App::new("news-importer").broker_unless_env("memory://");
    let news_topic = app.topic::<String, Article>("news");
    let db: Db = Arc::default();
    let store = db.clone();

    // @app.agent(news_topic, concurrency=10)
    let _imports_news = app
        .agent::<String, Article>("imports_news")
        .topic(&news_topic)
        .concurrency(10)
        .processing(move |articles| {
            let db = store.clone();
            async move {
                let mut articles = articles.enumerate();
                while let Some((n, article)) = articles.next().await {
                    let body = fetch_article(&article, n as u64).await;
                    store_article_in_db(&db, &article.url, body).await;
                    println!("stored {}", article.url);
                }
                Ok(())
            }
        });

    app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        for i in 0..30 {
            let article = Article {
                url: format!("https://news.example/{i}"),
                date_published: format!("2026-11-{:02}T12:00:00Z", 1 + i % 28),
            };
            news_topic.send(None, article).await?.await?;
        }
        worker.wait_idle(Duration::from_secs(30)).await;
        worker.stop().await?;
        println!(
            "{} articles stored",
            db.lock().map(|d| d.len()).unwrap_or(0)
        );
        Ok(())
    })
}
