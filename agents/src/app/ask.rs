//! Asking agents (Faust's `ask`, `map`, `kvmap`, `join`, `kvjoin`): the request goes to the
//! agent's topic with the reply headers, the reply comes back to this process's reply topic.
//! An `ask` that is cancelled or times out forgets its correlation id.

use futures_util::{Stream as FuturesStream, StreamExt};

use crate::app::agent::{AppAgent, AskOptions};
use crate::app::error::AppError;
use crate::app::topic::Model;
use crate::core::codec::{CodecError, Direction, Part};
use crate::runtime::ids::new_id;

/// How many asks `map`/`join` keep in flight.
const MAP_IN_FLIGHT: usize = 256;

impl<K: Model, V: Model, O: Model> AppAgent<K, V, O> {
    /// Sends a value and waits for the agent's reply (Faust's `ask`), at most
    /// `reply_timeout`.
    pub async fn ask(&self, value: V) -> Result<O, AppError> {
        self.ask_with(None, value, AskOptions::default()).await
    }

    /// `ask` with a key and options (partition, correlation id). The reply always comes to
    /// this process's reply topic (`Settings::reply_to`).
    pub async fn ask_with(
        &self,
        key: Option<K>,
        value: V,
        options: AskOptions,
    ) -> Result<O, AppError> {
        let app = &self.inner.app;
        let client = app.client().await?;
        let replies = client.replies().await?;
        let cid = options.correlation_id.clone().unwrap_or_else(new_id);
        let mut waiter = replies.expect(&cid)?;
        let opts = AskOptions {
            partition: options.partition,
            reply_to: Some(replies.topic().to_owned()),
            correlation_id: Some(cid.clone()),
        };
        // Returns once queued: the reply cannot come before the request is written anyway.
        self.send(key, value, opts).await?;
        let timeout = app.settings().reply_timeout;
        let value = match tokio::time::timeout(timeout, waiter.reply()).await {
            Ok(reply) => reply?,
            Err(_) => {
                return Err(AppError::ReplyTimeout {
                    agent: self.inner.name.clone(),
                    correlation_id: cid,
                    reply_to: replies.topic().to_owned(),
                    after: timeout,
                });
            }
        };
        serde_json::from_value::<O>(value).map_err(|e| {
            AppError::Codec(
                CodecError::new::<O>("json", Direction::Decode, e).for_part(Part::Other),
            )
        })
    }

    /// Asks for each value, yielding replies as they come (out of order; Faust's `map`).
    /// At most 256 asks are in flight, so an endless iterator is fine.
    pub fn map<I>(&self, values: I) -> impl FuturesStream<Item = Result<O, AppError>> + Send
    where
        I: IntoIterator<Item = V>,
        I::IntoIter: Send,
    {
        self.kvmap(values.into_iter().map(|v| (None, v)))
    }

    /// Like [`map`](Self::map) with `(key, value)` pairs, the key being the Kafka message key.
    pub fn kvmap<I>(&self, items: I) -> impl FuturesStream<Item = Result<O, AppError>> + Send
    where
        I: IntoIterator<Item = (Option<K>, V)>,
        I::IntoIter: Send,
    {
        let me = self.clone();
        futures_util::stream::iter(items)
            .map(move |(k, v)| {
                let me = me.clone();
                async move { me.ask_with(k, v, AskOptions::default()).await }
            })
            .buffer_unordered(MAP_IN_FLIGHT)
    }

    /// Asks for every value and returns the replies in the order of the values (Faust's
    /// `join`). Do not use it with endless iterators.
    pub async fn join<I>(&self, values: I) -> Result<Vec<O>, AppError>
    where
        I: IntoIterator<Item = V>,
        I::IntoIter: Send,
    {
        self.kvjoin(values.into_iter().map(|v| (None, v))).await
    }

    /// Like [`join`](Self::join) with `(key, value)` pairs.
    pub async fn kvjoin<I>(&self, items: I) -> Result<Vec<O>, AppError>
    where
        I: IntoIterator<Item = (Option<K>, V)>,
        I::IntoIter: Send,
    {
        let me = self.clone();
        let replies: Vec<Result<O, AppError>> = futures_util::stream::iter(items)
            .map(move |(k, v)| {
                let me = me.clone();
                async move { me.ask_with(k, v, AskOptions::default()).await }
            })
            .buffered(MAP_IN_FLIGHT)
            .collect()
            .await;
        replies.into_iter().collect()
    }
}
