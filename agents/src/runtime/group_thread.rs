//! The worker's consumer-group member on a thread of its own, with a runtime of its own: its
//! heartbeats, fetches and commits never wait for agent code, even code that blocks its
//! thread. The application side talks to it through the `GroupConsumer` handle and the
//! partitions it hands out, which work across runtimes.

use std::sync::Arc;

use mephisto_engine::group::{GroupConfig, GroupConsumer, PartitionEvents};
use mephisto_engine::{ClientConfig, Cluster};
use tokio::sync::oneshot;

use crate::runtime::error::RuntimeError;

/// The member and its thread; the thread stops when this is dropped.
pub(crate) struct GroupThread {
    consumer: Arc<GroupConsumer>,
    stop: Option<oneshot::Sender<()>>,
}

impl GroupThread {
    /// Connects a partition-mode member of `config`'s group on a new thread.
    pub(crate) async fn start(
        client: ClientConfig,
        config: GroupConfig,
    ) -> Result<(GroupThread, PartitionEvents), RuntimeError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("mephisto-group".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(RuntimeError::Thread(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let made = async {
                        let cluster = Cluster::connect(client).await?;
                        Ok::<_, RuntimeError>(GroupConsumer::new_partitioned(cluster, config)?)
                    }
                    .await;
                    match made {
                        Ok((consumer, events)) => {
                            let consumer = Arc::new(consumer);
                            if ready_tx.send(Ok((Arc::clone(&consumer), events))).is_err() {
                                return;
                            }
                            let _ = stop_rx.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(RuntimeError::Thread)?;
        let (consumer, events) = ready_rx
            .await
            .map_err(|_| RuntimeError::Closed("the consumer's thread"))??;
        Ok((
            GroupThread {
                consumer,
                stop: Some(stop_tx),
            },
            events,
        ))
    }

    /// The member.
    pub(crate) fn consumer(&self) -> &Arc<GroupConsumer> {
        &self.consumer
    }
}

impl Drop for GroupThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
