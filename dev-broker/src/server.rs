//! The socket side: the accept loop (one task per connection, all owned by a `JoinSet` so that
//! stopping the loop closes every connection), the per-connection request loop (frames in, one
//! request at a time, responses in request order), and the ticking task that drives group
//! timers and time-based retention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::ResponseKind;
use mephisto_wire::frame::FrameDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::fetch::PendingFetch;
use crate::handler::{encode_frame, handle_payload, Reply};
use crate::state::Shared;

/// How often group sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(20);

/// Time-based retention runs every this many ticks (once a second).
const TIME_RETENTION_EVERY: u32 = 50;

/// Accepts connections until the task is aborted; aborting it drops the `JoinSet` and with it
/// every connection task.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    connections.spawn(serve(socket, Arc::clone(&shared)));
                }
                Err(error) => {
                    tracing::warn!(%error, "dev broker: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Drives group timers until aborted.
pub(crate) async fn ticker(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        interval.tick().await;
        crate::group::tick(&mut shared.lock().groups, Instant::now());
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(TIME_RETENTION_EVERY) {
            shared.enforce_time_retention(crate::produce::now_ms());
        }
    }
}

/// Serves one connection until the peer closes it or sends something that closes it.
async fn serve(mut socket: TcpStream, shared: Arc<Shared>) {
    let decoder = FrameDecoder::new(shared.config.max_request_bytes);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let needed = match decoder.bytes_needed(&buf) {
                    Ok(n) => n.max(1),
                    Err(_) => return,
                };
                buf.reserve(needed.min(1024 * 1024));
                match socket.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
            Err(error) => {
                tracing::debug!(%error, "dev broker: bad frame, closing the connection");
                return;
            }
        };
        let response = match handle_payload(&shared, frame) {
            Reply::Frame(frame) => Some(frame),
            Reply::Nothing => None,
            Reply::Close => return,
            Reply::Deferred {
                rx,
                version,
                correlation_id,
            } => match rx.await {
                Ok(response) => match encode_frame(&response, version, correlation_id) {
                    Some(frame) => Some(frame),
                    None => return,
                },
                Err(_) => return,
            },
            Reply::FetchWait(pending) => match wait_fetch(&shared, &pending).await {
                Some(frame) => Some(frame),
                None => return,
            },
        };
        if let Some(frame) = response {
            if socket.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}

/// Waits until the fetch has enough data or its deadline passes, then encodes the response.
async fn wait_fetch(shared: &Shared, pending: &PendingFetch) -> Option<BytesMut> {
    loop {
        let mut changed = shared.subscribe_data();
        let force = Instant::now() >= pending.deadline;
        if let Some(response) = pending.poll(shared, force) {
            return encode_frame(
                &ResponseKind::Fetch(response),
                pending.version,
                pending.correlation_id,
            );
        }
        let deadline = tokio::time::Instant::from_std(pending.deadline);
        tokio::select! {
            _ = changed.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}
