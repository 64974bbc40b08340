//! Faust's page-views example with a tumbling window: views are regrouped by page id, and
//! the agent counts each page's views per 10-second window in a windowed table whose windows
//! expire after an hour.
//!
//! ```python
//! class PageView(faust.Record):
//!     id: str
//!     user: str
//!
//! app = faust.App('page_views', topic_partitions=4)
//! page_view_topic = app.topic('page_views', value_type=PageView)
//! page_views = app.Table('page_views', default=int).tumbling(
//!     10.0, expires=timedelta(hours=1))
//!
//! @app.agent(page_view_topic)
//! async def count_page_views(views):
//!     async for view in views.group_by(PageView.id):
//!         page_views[view.id] += 1
//! ```
//!
//! `cargo run --example page_views` sends a few views on the in-process development broker
//! (or on `MEPHISTO_BROKER`), waits until they are counted and prints each page's views (and
//! its count in the current window). `-- worker -l info` runs it as a worker. The changelog
//! `page_views-page_views-changelog` holds `[page, [start, end]]` keys, as Faust writes them.

use std::time::Duration;

use futures_util::StreamExt;
use mephisto::state::window::Window;
use mephisto::{App, WindowedTable};
use serde::{Deserialize, Serialize};

/// A page view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageView {
    /// The page.
    pub id: String,
    /// Who viewed it.
    pub user: String,
}

fn main() -> std::process::ExitCode {
    let app = App::new("page_views").broker_unless_env("memory://");
    app.configure(|s| s.topic_partitions = 4);
    let page_view_topic = app.topic::<String, PageView>("page_views");
    let page_views: WindowedTable<String, i64> = app
        .windowed_table(
            "page_views",
            Window::tumbling(Duration::from_secs(10)).expires(Duration::from_secs(3600)),
        )
        .default_value(|| 0);

    // @app.agent(page_view_topic)
    // async def count_page_views(views):
    //     async for view in views.group_by(PageView.id):
    //         page_views[view.id] += 1
    let table = page_views.clone();
    let _count_page_views = app
        .agent::<String, PageView>("count_page_views")
        .topic(&page_view_topic)
        .processing(move |views| {
            let table = table.clone();
            async move {
                let mut views = views.group_by(|v: &PageView| v.id.clone(), "id");
                while let Some(view) = views.next().await {
                    table.update(view.id, |n| *n += 1).await?;
                }
                Ok(())
            }
        });

    app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        for (page, user) in [
            ("home", "ann"),
            ("about", "bob"),
            ("home", "cy"),
            ("home", "ann"),
        ] {
            let view = PageView {
                id: page.to_owned(),
                user: user.to_owned(),
            };
            page_view_topic.send(None, view).await?.await?;
        }
        worker.wait_idle(Duration::from_secs(30)).await;
        // Each page's views, over its windows (one, unless the views straddled a boundary).
        let mut totals = std::collections::BTreeMap::<String, i64>::new();
        for (key, n) in page_views.table().items() {
            *totals.entry(key.key).or_default() += n;
        }
        for (page, n) in &totals {
            // Outside an agent, `now()` is the window of the wall clock.
            let now = page_views.get(page.clone()).now().unwrap_or(0);
            println!("{page:>6} {n} (this window: {now})");
        }
        worker.stop().await?;
        Ok(())
    })
}
