//! A scriptable fake broker on a loopback port, for faults a real broker will not produce on
//! demand: never answering, closing mid-request, answering out of order, an old ApiVersions.
//!
//! It speaks just enough Kafka through the wire crate's broker-side codecs: ApiVersions (the
//! versions Mephisto speaks, or UNSUPPORTED_VERSION per KIP-511 above `api_versions_max`) and
//! Metadata (itself as broker 1, no topics). A rule decides, per request, what to do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::frame::{write_frame, FrameDecoder};
use mephisto_wire::messages::{decode_request, encode_response_kind};
use mephisto_wire::versions::MEPHISTO_APIS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the fake does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer it, then any deferred responses (latest first).
    Answer,
    /// Keep its response until the next answered request on the same connection.
    Defer,
    /// Never answer it (the connection stays open).
    Ignore,
    /// Close the connection without answering.
    Close,
}

/// Where a request stands, for rules.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// The API.
    pub api: ApiKey,
    /// 1-based index of the connection (in accept order).
    pub connection: usize,
    /// 1-based index of this request among all requests of this API the fake received.
    pub nth_of_api: usize,
}

type Rule = Arc<dyn Fn(&Ctx) -> Action + Send + Sync>;

/// A running fake broker; stops when dropped.
pub struct FakeBroker {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `kafka://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

struct State {
    port: u16,
    api_versions_max: i16,
    rule: Rule,
    connections: AtomicUsize,
    per_api: Mutex<Vec<(ApiKey, usize)>>,
    received: Mutex<Vec<(usize, ApiKey, i16)>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self
            .state
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl FakeBroker {
    /// Starts a fake that applies `rule` to every request.
    pub async fn start(rule: impl Fn(&Ctx) -> Action + Send + Sync + 'static) -> Self {
        Self::start_with(i16::MAX, rule).await
    }

    /// Like [`start`](Self::start), answering ApiVersions above `api_versions_max` with
    /// UNSUPPORTED_VERSION and a v0 body (KIP-511).
    pub async fn start_with(
        api_versions_max: i16,
        rule: impl Fn(&Ctx) -> Action + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake broker");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State {
            port,
            api_versions_max,
            rule: Arc::new(rule),
            connections: AtomicUsize::new(0),
            per_api: Mutex::new(Vec::new()),
            received: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let n = accept_state.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let task = tokio::spawn(serve(socket, n, Arc::clone(&accept_state)));
                accept_state
                    .tasks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(task);
            }
        });
        Self {
            addr: format!("127.0.0.1:{port}"),
            url: format!("kafka://127.0.0.1:{port}"),
            state,
            accept,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every request received: (connection, API, version).
    pub fn received(&self) -> Vec<(usize, ApiKey, i16)> {
        self.state
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn serve(mut socket: TcpStream, connection: usize, state: Arc<State>) {
    let decoder = FrameDecoder::default();
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut deferred: Vec<BytesMut> = Vec::new();
    loop {
        let payload = loop {
            match decoder.decode(&mut rbuf) {
                Ok(Some(payload)) => break payload,
                Ok(None) => {}
                Err(_) => return,
            }
            match socket.read_buf(&mut rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let Ok(request) = decode_request(payload) else {
            return;
        };
        let api = request.api_key;
        let version = request.header.request_api_version;
        let correlation_id = request.header.correlation_id;
        state
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((connection, api, version));
        let nth_of_api = {
            let mut per_api = state.per_api.lock().unwrap_or_else(|p| p.into_inner());
            match per_api.iter_mut().find(|(a, _)| *a == api) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    per_api.push((api, 1));
                    1
                }
            }
        };
        let action = (state.rule)(&Ctx {
            api,
            connection,
            nth_of_api,
        });
        let response = match (api, version) {
            (ApiKey::ApiVersions, v) if v > state.api_versions_max => {
                // KIP-511: error + our ApiVersions range, in a v0 body.
                let body = ApiVersionsResponse::default()
                    .with_error_code(35)
                    .with_api_keys(vec![ApiVersion::default()
                        .with_api_key(ApiKey::ApiVersions as i16)
                        .with_min_version(0)
                        .with_max_version(state.api_versions_max)]);
                Some((ResponseKind::ApiVersions(body), 0))
            }
            (ApiKey::ApiVersions, v) => {
                let keys = MEPHISTO_APIS
                    .iter()
                    .map(|s| {
                        let max = if s.api == ApiKey::ApiVersions {
                            s.max.min(state.api_versions_max)
                        } else {
                            s.max
                        };
                        ApiVersion::default()
                            .with_api_key(s.api as i16)
                            .with_min_version(s.min)
                            .with_max_version(max)
                    })
                    .collect();
                Some((
                    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(keys)),
                    v,
                ))
            }
            (ApiKey::Metadata, v) => {
                // Echo the topics asked for (as unknown), so tests can tell responses apart.
                let topics = match &request.body {
                    RequestKind::Metadata(m) => m
                        .topics
                        .iter()
                        .flatten()
                        .filter_map(|t| t.name.clone())
                        .map(|name| {
                            MetadataResponseTopic::default()
                                .with_name(Some(name))
                                .with_error_code(3)
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let body = MetadataResponse::default()
                    .with_topics(topics)
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(state.port))])
                    .with_cluster_id(Some(StrBytes::from_static_str("fake")))
                    .with_controller_id(BrokerId(1));
                Some((ResponseKind::Metadata(body), v))
            }
            _ => None,
        };
        let frame = response.and_then(|(body, v)| {
            let mut inner = BytesMut::new();
            encode_response_kind(&mut inner, &body, v, correlation_id).ok()?;
            let mut framed = BytesMut::new();
            write_frame(&mut framed, &inner, usize::MAX).ok()?;
            Some(framed)
        });
        match (action, frame) {
            (Action::Close, _) | (_, None) => return,
            (Action::Ignore, _) => {}
            (Action::Defer, Some(frame)) => deferred.push(frame),
            (Action::Answer, Some(frame)) => {
                if socket.write_all(&frame).await.is_err() {
                    return;
                }
                while let Some(frame) = deferred.pop() {
                    if socket.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A loopback listener that accepts connections and never sends a byte.
pub struct SilentListener {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    task: JoinHandle<()>,
}

impl SilentListener {
    /// Starts one.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind silent listener");
        let addr = listener.local_addr().expect("local addr").to_string();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { addr, task }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
