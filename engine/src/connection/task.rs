//! The task that drives one connection: accepts requests, writes them, reads responses, matches
//! them by correlation id, and expires requests that miss their deadline.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::frame::FrameDecoder;
use mephisto_wire::header::{peek_correlation_id, CorrelationIds};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::inflight::{InFlight, Pending};
use super::{Command, Death, RawSender, Reply};
use crate::broker_url::BrokerAddr;
use crate::config::ClientConfig;
use crate::error::EngineError;

/// Queued requests per connection beyond those in flight; callers wait when it is full.
const QUEUE: usize = 16;
/// Stop accepting requests while this many bytes wait to be written.
const WRITE_HIGH_WATER: usize = 1024 * 1024;
/// Smallest read attempted, so small responses do not cost one syscall each.
const READ_CHUNK: usize = 64 * 1024;

/// Starts the task for an open socket and returns the handle that feeds it.
pub(super) fn spawn(stream: TcpStream, broker: BrokerAddr, config: &ClientConfig) -> RawSender {
    let (tx, rx) = mpsc::channel(QUEUE);
    let death = Arc::new(Death::default());
    let kill = Arc::new(Notify::new());
    let driver = Driver {
        kill: Arc::clone(&kill),
        death: Arc::clone(&death),
        broker: broker.clone(),
        rx,
        decoder: FrameDecoder::new(config.max_frame_size),
        max_in_flight: config.max_in_flight,
        ids: CorrelationIds::new(),
        inflight: InFlight::default(),
        wbuf: BytesMut::new(),
        written: 0,
        rx_closed: false,
    };
    let task_death = Arc::clone(&death);
    tokio::spawn(async move {
        let mut driver = driver;
        let outcome = driver.run(stream).await;
        driver.shut_down(outcome, &task_death);
    });
    RawSender {
        broker,
        tx,
        death,
        kill,
        client_id: StrBytes::from_string(config.client_id.clone()),
        max_frame_size: config.max_frame_size,
    }
}

/// How the connection ended.
enum Outcome {
    /// All handles are gone and nothing is in flight.
    Idle,
    /// The connection failed; every request still waiting gets this error.
    Failed(EngineError),
    /// A request missed its deadline: it gets a timeout, every other request `others`.
    TimedOut {
        /// The request that timed out.
        pending: Pending,
        /// The error for everything else.
        others: EngineError,
    },
}

struct Driver {
    broker: BrokerAddr,
    /// Notified when a handle closes the connection; the reason is then in `death`.
    kill: Arc<Notify>,
    death: Arc<Death>,
    rx: mpsc::Receiver<Command>,
    decoder: FrameDecoder,
    max_in_flight: usize,
    ids: CorrelationIds,
    inflight: InFlight,
    /// Encoded frames not yet written.
    wbuf: BytesMut,
    /// Bytes written to the socket since it opened.
    written: u64,
    rx_closed: bool,
}

impl Driver {
    async fn run(&mut self, mut stream: TcpStream) -> Outcome {
        let (mut rd, mut wr) = stream.split();
        let mut rbuf = BytesMut::new();
        let far_future = Instant::now() + std::time::Duration::from_secs(86400 * 365);
        let sleep = tokio::time::sleep_until(far_future);
        tokio::pin!(sleep);
        let mut armed = far_future;
        loop {
            if self.rx_closed && !self.inflight.prune_abandoned() && self.wbuf.is_empty() {
                return Outcome::Idle;
            }
            let next = self.inflight.next_deadline().unwrap_or(far_future);
            if next != armed {
                sleep.as_mut().reset(next);
                armed = next;
            }
            let accepting = !self.rx_closed
                && self.inflight.len() < self.max_in_flight
                && self.wbuf.len() < WRITE_HIGH_WATER;
            let want = match self.decoder.bytes_needed(&rbuf) {
                Ok(n) => n.max(READ_CHUNK),
                Err(source) => return self.failed_frame(source),
            };
            rbuf.reserve(want);
            tokio::select! {
                biased;
                () = self.kill.notified() => {
                    let reason = self.death.get().unwrap_or_else(|| {
                        EngineError::closed(&self.broker, "closed by its owner")
                    });
                    return Outcome::Failed(reason);
                }
                read = rd.read_buf(&mut rbuf) => match read {
                    Ok(0) => {
                        return Outcome::Failed(EngineError::closed(
                            &self.broker,
                            "the broker closed the connection",
                        ))
                    }
                    Ok(_) => {
                        if let Err(outcome) = self.dispatch(&mut rbuf) {
                            return outcome;
                        }
                    }
                    Err(e) => {
                        return Outcome::Failed(EngineError::closed(
                            &self.broker,
                            format!("read failed: {e}"),
                        ))
                    }
                },
                write = wr.write(&self.wbuf), if !self.wbuf.is_empty() => match write {
                    Ok(0) => {
                        return Outcome::Failed(EngineError::closed(
                            &self.broker,
                            "the socket accepts no more data",
                        ))
                    }
                    Ok(n) => {
                        self.wbuf.advance(n);
                        self.written += n as u64;
                        self.inflight.flushed_up_to(self.written);
                    }
                    Err(e) => {
                        return Outcome::Failed(EngineError::closed(
                            &self.broker,
                            format!("write failed: {e}"),
                        ))
                    }
                },
                () = &mut sleep, if armed != far_future => {
                    if let Some((id, pending)) = self.inflight.take_expired(Instant::now()) {
                        let reason = format!(
                            "{:?} request (correlation id {id}) got no response within {:?}",
                            pending.api, pending.timeout
                        );
                        return Outcome::TimedOut {
                            pending,
                            others: EngineError::closed(&self.broker, reason),
                        };
                    }
                },
                command = self.rx.recv(), if accepting => match command {
                    None => self.rx_closed = true,
                    Some(command) => {
                        self.accept(command);
                        // Batch whatever else is queued into the same write.
                        while self.inflight.len() < self.max_in_flight
                            && self.wbuf.len() < WRITE_HIGH_WATER
                        {
                            match self.rx.try_recv() {
                                Ok(command) => self.accept(command),
                                Err(_) => break,
                            }
                        }
                    }
                },
            }
        }
    }

    /// Encodes a request into the write buffer and registers it.
    fn accept(&mut self, command: Command) {
        let Command {
            api,
            encode,
            reply,
            deadline,
            timeout,
        } = command;
        if reply.is_closed() {
            return; // the caller gave up while the request was queued
        }
        if deadline <= Instant::now() {
            reply.fail(EngineError::RequestTimeout {
                broker: self.broker.to_string(),
                api,
                timeout,
            });
            return;
        }
        let correlation_id = self.ids.next();
        if let Err(e) = encode(&mut self.wbuf, correlation_id) {
            reply.fail(EngineError::Message(e));
            return;
        }
        match reply {
            Reply::Response(reply) => self.inflight.insert(
                correlation_id,
                Pending {
                    api,
                    reply,
                    deadline,
                    timeout,
                },
            ),
            Reply::Written(tx) => {
                let end = self.written + self.wbuf.len() as u64;
                self.inflight.push_unflushed(end, tx);
            }
        }
    }

    /// Hands every complete response frame in `rbuf` to its request.
    fn dispatch(&mut self, rbuf: &mut BytesMut) -> Result<(), Outcome> {
        loop {
            let payload = match self.decoder.decode(rbuf) {
                Ok(Some(payload)) => payload,
                Ok(None) => return Ok(()),
                Err(source) => return Err(self.failed_frame(source)),
            };
            let id = match peek_correlation_id(&payload) {
                Ok(id) => id,
                Err(e) => return Err(self.protocol(e.to_string())),
            };
            match self.inflight.remove(id) {
                Some(pending) => {
                    let _ = pending.reply.send(Ok(payload));
                }
                None => {
                    return Err(self.protocol(format!("response with unknown correlation id {id}")))
                }
            }
        }
    }

    fn failed_frame(&self, source: mephisto_wire::frame::FrameError) -> Outcome {
        Outcome::Failed(EngineError::Frame {
            broker: self.broker.to_string(),
            source,
        })
    }

    fn protocol(&self, detail: String) -> Outcome {
        Outcome::Failed(EngineError::Protocol {
            broker: self.broker.to_string(),
            detail,
        })
    }

    /// Fails everything still waiting and records why the connection ended.
    fn shut_down(&mut self, outcome: Outcome, death: &Death) {
        let error = match outcome {
            Outcome::Idle => EngineError::closed(&self.broker, "connection closed by the client"),
            Outcome::Failed(error) => error,
            Outcome::TimedOut { pending, others } => {
                let _ = pending.reply.send(Err(EngineError::RequestTimeout {
                    broker: self.broker.to_string(),
                    api: pending.api,
                    timeout: pending.timeout,
                }));
                others
            }
        };
        tracing::debug!(broker = %self.broker, %error, "connection ended");
        // Record the reason before closing the queue, so a handle that sees the queue closed
        // also sees why.
        death.set(error.clone());
        self.rx.close();
        self.inflight.fail_all(&error);
        while let Ok(command) = self.rx.try_recv() {
            command.reply.fail(error.clone());
        }
    }
}
