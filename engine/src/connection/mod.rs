//! One TCP connection to one broker, driven by its own tokio task.
//!
//! [`Connection`] is a cheap handle (clone it freely) to that task. Requests are pipelined: many
//! may be in flight at once (up to [`ClientConfig::max_in_flight`]), each matched to its response
//! by correlation id through a map of oneshot senders, whatever order the responses come in.
//!
//! # Life cycle
//! - [`Connection::connect`] opens the socket and runs the ApiVersions handshake (retrying at a
//!   lower version when the broker answers UNSUPPORTED_VERSION, KIP-511), all within the connect
//!   timeout, and negotiates the version of every API Mephisto speaks
//!   ([`Connection::versions`]).
//! - Each request has a deadline (the request timeout unless given one). A request that misses
//!   it fails with [`EngineError::RequestTimeout`] and, as in the Java client, the connection is
//!   closed: a broker that does not answer one request is not trusted with the others.
//! - When the connection dies (broker closed it, I/O error, garbage on the wire, a timeout),
//!   every request in flight or queued fails with the same typed error, and every later
//!   request fails at once; [`Connection::is_closed`] turns true. Reconnecting is the pool's job
//!   ([`Cluster`](crate::cluster::Cluster)), with backoff.
//! - When every handle is dropped, the task finishes the requests in flight and exits.
//!
//! # Ordering
//! Requests are written in the order their `send` futures are first polled: the first poll
//! enqueues the request (the queue is FIFO, also while it is full and callers wait for room),
//! and the task writes in queue order. A caller that must keep requests in order (the producer,
//! for idempotent sequence numbers) polls each send once before starting the next.
//!
//! # Inside the task
//! The task owns the socket and two buffers. The write path encodes each request straight into
//! the write buffer (frames from many callers go out in one `write`); the read path splits
//! frames with the wire crate's [`FrameDecoder`](mephisto_wire::frame::FrameDecoder), which
//! enforces the maximum frame size before anything is reserved. Reading, writing, accepting
//! requests and the timeout timer run concurrently in one `select!`, so a large request being
//! written never stops responses from being read. Memory is bounded: in-flight requests by
//! `max_in_flight`, queued requests by a small channel, the write buffer by a high-water mark
//! (plus at most one frame), the read buffer by the maximum frame size.

mod handshake;
mod inflight;
mod task;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::{Request, StrBytes};
use mephisto_wire::messages::{decode_response, encode_request_frame, MessageError};
use mephisto_wire::versions::NegotiatedVersions;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::broker_url::BrokerAddr;
use crate::config::ClientConfig;
use crate::error::EngineError;

/// A handle to one broker connection. Cloning is cheap; all clones share the connection.
#[derive(Debug, Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    raw: RawSender,
    versions: NegotiatedVersions,
    api_versions: ApiVersionsResponse,
    request_timeout: Duration,
}

impl Connection {
    /// Opens a connection to `addr` and performs the ApiVersions handshake, all within
    /// `config.connect_timeout`.
    ///
    /// Fails with [`EngineError::Connect`] (refused, unreachable, unresolvable),
    /// [`EngineError::ConnectTimeout`], or [`EngineError::Versions`] when the broker lacks an
    /// API Mephisto requires.
    pub async fn connect(addr: &BrokerAddr, config: &ClientConfig) -> Result<Self, EngineError> {
        let deadline = Instant::now() + config.connect_timeout;
        let attempt = async {
            let stream = TcpStream::connect((addr.host.as_str(), addr.port))
                .await
                .map_err(|e| EngineError::connect(addr, e))?;
            // Requests are small and latency matters more than packet count.
            let _ = stream.set_nodelay(true);
            let raw = task::spawn(stream, addr.clone(), config);
            let (versions, api_versions) =
                handshake::run(&raw, deadline, &config.max_versions).await?;
            Ok(Self {
                shared: Arc::new(Shared {
                    raw,
                    versions,
                    api_versions,
                    request_timeout: config.request_timeout,
                }),
            })
        };
        let timed_out = || EngineError::ConnectTimeout {
            broker: addr.to_string(),
            timeout: config.connect_timeout,
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            // The handshake shares the connect deadline; its timeout is the connect timeout.
            Ok(Err(EngineError::RequestTimeout { .. })) | Err(_) => Err(timed_out()),
            Ok(result) => result,
        }
    }

    /// The broker's address.
    pub fn broker(&self) -> &BrokerAddr {
        &self.shared.raw.broker
    }

    /// The version negotiated for each API Mephisto speaks with this broker.
    pub fn versions(&self) -> &NegotiatedVersions {
        &self.shared.versions
    }

    /// The version to use for request type `R`, or [`EngineError::Versions`] when the broker
    /// offers no version Mephisto speaks.
    pub fn version_of<R: Request>(&self) -> Result<i16, EngineError> {
        let api = api_key::<R>()?;
        self.shared
            .versions
            .require(api)
            .map_err(|source| EngineError::Versions {
                broker: self.broker().to_string(),
                source,
            })
    }

    /// The broker's ApiVersions answer, as received during the handshake.
    pub fn api_versions(&self) -> &ApiVersionsResponse {
        &self.shared.api_versions
    }

    /// Whether the connection is dead; every request on it now fails.
    pub fn is_closed(&self) -> bool {
        self.shared.raw.tx.is_closed()
    }

    /// Why the connection died, once it has.
    pub fn close_reason(&self) -> Option<EngineError> {
        self.shared.raw.death.get()
    }

    /// Sends `request` at `version` and waits for its response, for at most the request timeout.
    pub async fn send<R>(&self, request: R, version: i16) -> Result<R::Response, EngineError>
    where
        R: Request + Send + 'static,
    {
        self.send_with_timeout(request, version, self.shared.request_timeout)
            .await
    }

    /// [`send`](Self::send) with an explicit timeout, for requests the broker may legitimately
    /// hold (a long-poll Fetch, a JoinGroup waiting for a rebalance): give them their own wait
    /// plus the request timeout.
    pub async fn send_with_timeout<R>(
        &self,
        request: R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, EngineError>
    where
        R: Request + Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let raw = &self.shared.raw;
        let payload = raw.request(request, version, deadline, timeout).await?;
        match decode_response::<R>(payload, version) {
            Ok(decoded) => Ok(decoded.body),
            Err(error) => {
                // A frame that does not decode means the stream can no longer be trusted:
                // close the connection (failing whatever else is in flight) and report why.
                let error = EngineError::Message(error);
                raw.kill(error.clone());
                Err(error)
            }
        }
    }

    /// Sends a request the broker will not answer (a Produce with `acks = 0`). Resolves once the
    /// request has been handed to the socket; fails if the connection dies first or the request
    /// cannot be written within the request timeout.
    pub async fn send_no_response<R>(&self, request: R, version: i16) -> Result<(), EngineError>
    where
        R: Request + Send + 'static,
    {
        let timeout = self.shared.request_timeout;
        self.shared
            .raw
            .fire_and_forget(request, version, Instant::now() + timeout, timeout)
            .await
    }
}

/// The `ApiKey` of request type `R`.
pub(crate) fn api_key<R: Request>() -> Result<ApiKey, EngineError> {
    ApiKey::try_from(R::KEY).map_err(|()| EngineError::Message(MessageError::UnknownApiKey(R::KEY)))
}

/// Writes one request frame with the given correlation id into the write buffer.
type Encoder = Box<dyn FnOnce(&mut BytesMut, i32) -> Result<(), MessageError> + Send>;

/// What a request wants back.
enum Reply {
    /// The response frame (without its size prefix).
    Response(oneshot::Sender<Result<Bytes, EngineError>>),
    /// Only to know the request left: for requests without a response.
    Written(oneshot::Sender<Result<(), EngineError>>),
}

impl Reply {
    fn is_closed(&self) -> bool {
        match self {
            Self::Response(tx) => tx.is_closed(),
            Self::Written(tx) => tx.is_closed(),
        }
    }

    fn fail(self, error: EngineError) {
        // The caller may have given up; nobody to tell then.
        match self {
            Self::Response(tx) => drop(tx.send(Err(error))),
            Self::Written(tx) => drop(tx.send(Err(error))),
        }
    }
}

/// A request on its way to the connection task.
struct Command {
    api: ApiKey,
    encode: Encoder,
    reply: Reply,
    deadline: Instant,
    timeout: Duration,
}

/// Why the connection task stopped; written once by the task, read by handles.
#[derive(Debug, Default)]
struct Death(Mutex<Option<EngineError>>);

impl Death {
    fn get(&self) -> Option<EngineError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, error: EngineError) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(error);
    }
}

/// The sending side of a connection task, before and after the handshake.
#[derive(Debug)]
struct RawSender {
    broker: BrokerAddr,
    tx: mpsc::Sender<Command>,
    death: Arc<Death>,
    /// Wakes the task to close the connection (see [`RawSender::kill`]).
    kill: Arc<Notify>,
    client_id: StrBytes,
    max_frame_size: usize,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command").field("api", &self.api).finish()
    }
}

impl RawSender {
    /// Closes the connection because of `error`: the task fails every request in flight with
    /// it and stops; later requests on this handle fail at once.
    fn kill(&self, error: EngineError) {
        self.death.set(error);
        self.kill.notify_one();
    }

    fn dead(&self) -> EngineError {
        self.death
            .get()
            .unwrap_or_else(|| EngineError::closed(&self.broker, "connection task stopped"))
    }

    fn encoder<R: Request + Send + 'static>(&self, request: R, version: i16) -> Encoder {
        let client_id = self.client_id.clone();
        let max = self.max_frame_size;
        Box::new(move |buf: &mut BytesMut, correlation_id: i32| {
            encode_request_frame(
                buf,
                &request,
                version,
                correlation_id,
                Some(&client_id),
                max,
            )
        })
    }

    fn timed_out(&self, api: ApiKey, timeout: Duration) -> EngineError {
        EngineError::RequestTimeout {
            broker: self.broker.to_string(),
            api,
            timeout,
        }
    }

    /// Sends a request and returns its raw response frame.
    async fn request<R: Request + Send + 'static>(
        &self,
        request: R,
        version: i16,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Bytes, EngineError> {
        self.submit(request, version, deadline, timeout, Reply::Response)
            .await
    }

    /// Sends a request that gets no response; resolves once it is written.
    async fn fire_and_forget<R: Request + Send + 'static>(
        &self,
        request: R,
        version: i16,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        self.submit(request, version, deadline, timeout, Reply::Written)
            .await
    }

    /// Queues a request for the connection task and waits for the reply `reply` asks for, all
    /// within `deadline`.
    async fn submit<R: Request + Send + 'static, T>(
        &self,
        request: R,
        version: i16,
        deadline: Instant,
        timeout: Duration,
        reply: fn(oneshot::Sender<Result<T, EngineError>>) -> Reply,
    ) -> Result<T, EngineError> {
        let api = api_key::<R>()?;
        let (tx, rx) = oneshot::channel();
        let command = Command {
            api,
            encode: self.encoder(request, version),
            reply: reply(tx),
            deadline,
            timeout,
        };
        let exchange = async {
            self.tx.send(command).await.map_err(|_| self.dead())?;
            rx.await.map_err(|_| self.dead())?
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(api, timeout)),
        }
    }
}
