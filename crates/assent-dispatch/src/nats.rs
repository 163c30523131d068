//! A minimal NATS client: just enough of the client protocol for JetStream publishing with
//! deduplication, plus a pull consumer for tests and operators. Written here rather than taken
//! from `async-nats` to keep the dependency tree lean; it speaks plain TCP only (no TLS, no
//! credentials), which suits a broker on the same host or private network.
//!
//! One background task owns the read half of the socket: it answers server `PING`s and routes
//! every message arriving on this client's reply inbox (`_INBOX.<random>.<token>`) to the request
//! that owns `<token>`. A pull `fetch` gets a subscription of its own instead, routed by its
//! subscription id, because JetStream delivers pulled messages under their *original* subject,
//! not the reply subject they were requested with. Writers share the write half behind a mutex
//! and write each command whole.
//!
//! The client does not reconnect: a dropped connection fails every call with `Closed`
//! (`is_closed` tells), and the owner connects anew. Publishing is idempotent by `Nats-Msg-Id`,
//! so republishing whatever was in flight is safe.
//!
//! Tested against nats-server 2.9 (`$JS.API.CONSUMER.CREATE.<stream>.<consumer>` needs 2.9+).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

/// How long a request waits for its reply unless `with_timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The port NATS listens on when a URL names none.
const DEFAULT_PORT: u16 = 4222;
/// INFO lines carry cluster URLs and can reach a few KiB; anything past this is not NATS.
const MAX_CONTROL_LINE: u64 = 64 * 1024;
/// Refuse to allocate for a message larger than any server lets through (its `max_payload`
/// tops out at 64 MiB), so a corrupt length cannot exhaust memory.
const MAX_INCOMING: usize = 64 * 1024 * 1024 + 64 * 1024;
/// What servers allow when their INFO does not say (nats-server's default `max_payload`).
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// The subscription id of the reply inbox, the only subscription this client makes.
const INBOX_SID: &str = "1";
/// The JetStream error code for "stream not found".
const STREAM_NOT_FOUND: u32 = 10059;
/// The JetStream error code for "consumer not found".
const CONSUMER_NOT_FOUND: u32 = 10014;

/// Why a NATS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("invalid NATS URL `{0}`: expected `nats://host:port` or `host:port`, without credentials")]
    InvalidUrl(String),
    #[error("cannot connect to NATS at `{url}`")]
    Connect {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("the NATS server at `{url}` refused the handshake: {reason}")]
    Handshake { url: String, reason: String },
    #[error("the NATS connection failed")]
    Io(#[from] io::Error),
    #[error("the NATS connection is closed: {0}")]
    Closed(String),
    #[error("unexpected data from the NATS server: {0}")]
    Protocol(String),
    #[error("no reply from NATS on `{subject}` within {timeout:?}")]
    Timeout { subject: String, timeout: Duration },
    #[error("nothing answers on `{0}`: is JetStream enabled on the NATS server?")]
    NoResponders(String),
    #[error("no JetStream stream captures subject `{0}`")]
    NoStream(String),
    #[error("no JetStream consumer `{consumer}` on stream `{stream}`")]
    NoConsumer { stream: String, consumer: String },
    #[error("JetStream error {code} ({err_code}): {description}")]
    JetStream { code: u16, err_code: u32, description: String },
    #[error("unexpected NATS status {code}: {description}")]
    Status { code: u16, description: String },
    #[error("malformed JetStream reply")]
    Json(#[from] serde_json::Error),
    #[error("invalid NATS subject `{0}`")]
    InvalidSubject(String),
    #[error("invalid JetStream name `{0}`: names are non-empty and contain no `.`, `*`, `>`, `/`, `\\` or whitespace")]
    InvalidName(String),
    #[error("invalid NATS header value: it contains a line break")]
    InvalidHeader,
    #[error("the message has {size} bytes but the NATS server accepts at most {max}")]
    PayloadTooLarge { size: usize, max: usize },
}

/// The broker's acknowledgement of a JetStream publish.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PubAck {
    pub stream: String,
    pub seq: u64,
    /// True when the stream already held a message with this `Nats-Msg-Id` inside its
    /// duplicate window: nothing was stored, `seq` is the original's.
    #[serde(default)]
    pub duplicate: bool,
}

/// What `stream_info` reports about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    pub subjects: Vec<String>,
    pub duplicate_window: Duration,
    pub messages: u64,
    pub last_seq: u64,
}

/// A message delivered to this client.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    /// In the order received; NATS allows repeated names.
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    /// Where to send an acknowledgement, for messages from a JetStream consumer.
    pub reply: Option<String>,
}

impl Message {
    /// The first value of a header, matched case-insensitively as NATS headers are.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Payloads are consent events about people: their bytes stay out of logs.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("subject", &self.subject)
            .field("headers", &self.headers)
            .field("payload_len", &self.payload.len())
            .field("reply", &self.reply)
            .finish()
    }
}

/// A connection to one NATS server. Requests may run concurrently from many tasks.
pub struct NatsClient {
    shared: Arc<Shared>,
    inbox_prefix: String,
    next_token: AtomicU64,
    timeout: Duration,
    max_payload: usize,
    reader: JoinHandle<()>,
}

impl fmt::Debug for NatsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsClient")
            .field("inbox_prefix", &self.inbox_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for NatsClient {
    fn drop(&mut self) {
        // The reader holds only the read half; stopping it lets the socket close.
        self.reader.abort();
    }
}

/// State shared with the reader task.
struct Shared {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    routes: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    /// Replies on the shared inbox, by the last token of their subject.
    by_token: HashMap<String, mpsc::UnboundedSender<Incoming>>,
    /// Messages on a fetch's own subscription, by subscription id.
    by_sid: HashMap<String, mpsc::UnboundedSender<Incoming>>,
    /// Set once the reader stops: new requests then fail at once instead of timing out.
    closed: Option<String>,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding this lock leaves the map consistent (single inserts and removes).
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn write(&self, bytes: &[u8]) -> Result<(), NatsError> {
        let mut writer = self.writer.lock().await;
        writer.write_all(bytes).await?;
        Ok(())
    }
}

/// A message together with the status line NATS puts in its headers (`NATS/1.0 503`).
struct Incoming {
    message: Message,
    status: Option<(u16, String)>,
}

/// Where the reader sends a message: by reply-inbox token or by subscription id.
enum RouteKey {
    Token(String),
    Sid(String),
}

/// Removes a route when its request finishes, times out or is cancelled.
struct Route<'a> {
    shared: &'a Shared,
    key: RouteKey,
    reply: String,
    rx: mpsc::UnboundedReceiver<Incoming>,
}

impl Drop for Route<'_> {
    fn drop(&mut self) {
        let mut routes = self.shared.routes();
        match &self.key {
            RouteKey::Token(token) => routes.by_token.remove(token),
            RouteKey::Sid(sid) => routes.by_sid.remove(sid),
        };
    }
}

#[derive(Deserialize)]
struct ServerInfo {
    #[serde(default)]
    max_payload: usize,
    #[serde(default)]
    headers: bool,
    #[serde(default)]
    tls_required: bool,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u32,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct StreamInfoReply {
    config: StreamConfigReply,
    state: StreamStateReply,
}

#[derive(Deserialize)]
struct StreamConfigReply {
    name: String,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    duplicate_window: u64,
}

#[derive(Deserialize)]
struct StreamStateReply {
    messages: u64,
    last_seq: u64,
}

impl NatsClient {
    /// Connects to `nats://host:port` (or `host:port`, or `host` for port 4222) and completes the
    /// handshake, using `DEFAULT_TIMEOUT` for the connection and for every request.
    pub async fn connect(url: &str) -> Result<Self, NatsError> {
        Self::connect_with_timeout(url, DEFAULT_TIMEOUT).await
    }

    /// Like `connect`, with another timeout for the connection and for every request.
    pub async fn connect_with_timeout(url: &str, request_timeout: Duration) -> Result<Self, NatsError> {
        let address = parse_url(url)?;
        let connect_error = |source| NatsError::Connect { url: url.to_owned(), source };
        let stream = timeout(request_timeout, TcpStream::connect(&address))
            .await
            .map_err(|_| connect_error(io::Error::new(io::ErrorKind::TimedOut, "connection timed out")))?
            .map_err(connect_error)?;
        stream.set_nodelay(true)?;
        let (read_half, mut write_half) = stream.into_split();
        let mut reader = BufReader::new(read_half);
        let info = timeout(request_timeout, handshake(&mut reader, &mut write_half))
            .await
            .map_err(|_| NatsError::Handshake { url: url.to_owned(), reason: "no answer in time".to_owned() })?
            .map_err(|error| match error {
                NatsError::Protocol(reason) => NatsError::Handshake { url: url.to_owned(), reason },
                other => other,
            })?;

        let inbox_prefix = format!("_INBOX.{:016x}{:016x}", random_u64()?, random_u64()?);
        write_half.write_all(format!("SUB {inbox_prefix}.* {INBOX_SID}\r\n").as_bytes()).await?;

        let shared = Arc::new(Shared { writer: tokio::sync::Mutex::new(write_half), routes: Mutex::default() });
        let reader = tokio::spawn(read_loop(reader, Arc::clone(&shared)));
        Ok(Self {
            shared,
            inbox_prefix,
            next_token: AtomicU64::new(0),
            timeout: request_timeout,
            max_payload: if info.max_payload == 0 { DEFAULT_MAX_PAYLOAD } else { info.max_payload },
            reader,
        })
    }

    /// Whether the connection has dropped. This client does not reconnect: once closed, every
    /// call fails with `Closed`, and the owner connects a new client.
    pub fn is_closed(&self) -> bool {
        self.shared.routes().closed.is_some()
    }

    /// Creates the stream if it does not exist; if it does, makes its subjects and duplicate
    /// window match, leaving the rest of its configuration alone.
    pub async fn ensure_stream(
        &self,
        name: &str,
        subjects: &[&str],
        duplicate_window: Duration,
    ) -> Result<StreamInfo, NatsError> {
        check_name(name)?;
        for subject in subjects {
            check_subject(subject, true)?;
        }
        let window = nanos(duplicate_window);
        let Some(current) = self.stream_info_raw(name).await? else {
            let config = json!({
                "name": name,
                "subjects": subjects,
                "storage": "file",
                "retention": "limits",
                "duplicate_window": window,
            });
            let created: StreamInfoReply = self.js_request(&format!("$JS.API.STREAM.CREATE.{name}"), &config).await?;
            return Ok(created.into());
        };
        let info = StreamInfo::from(serde_json::from_value::<StreamInfoReply>(current.clone())?);
        if info.subjects.iter().map(String::as_str).eq(subjects.iter().copied())
            && u64::try_from(info.duplicate_window.as_nanos()).ok() == Some(window)
        {
            return Ok(info);
        }
        // An update must carry the whole configuration, so start from what the server holds.
        let mut config = current.get("config").cloned().unwrap_or_else(|| json!({}));
        if let Some(fields) = config.as_object_mut() {
            fields.insert("subjects".to_owned(), json!(subjects));
            fields.insert("duplicate_window".to_owned(), json!(window));
        }
        let updated: StreamInfoReply = self.js_request(&format!("$JS.API.STREAM.UPDATE.{name}"), &config).await?;
        Ok(updated.into())
    }

    /// The stream's configuration and state, or `None` if there is no such stream.
    pub async fn stream_info(&self, name: &str) -> Result<Option<StreamInfo>, NatsError> {
        check_name(name)?;
        match self.stream_info_raw(name).await? {
            Some(raw) => Ok(Some(serde_json::from_value::<StreamInfoReply>(raw)?.into())),
            None => Ok(None),
        }
    }

    async fn stream_info_raw(&self, name: &str) -> Result<Option<Value>, NatsError> {
        match self.js_request::<Value>(&format!("$JS.API.STREAM.INFO.{name}"), &json!({})).await {
            Ok(raw) => Ok(Some(raw)),
            Err(NatsError::JetStream { err_code: STREAM_NOT_FOUND, .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Deletes a stream and every message in it.
    pub async fn delete_stream(&self, name: &str) -> Result<(), NatsError> {
        check_name(name)?;
        self.js_request::<Value>(&format!("$JS.API.STREAM.DELETE.{name}"), &json!({})).await?;
        Ok(())
    }

    /// Publishes to JetStream with a `Nats-Msg-Id` header and waits for the stream's
    /// acknowledgement. Republishing the same id inside the stream's duplicate window stores
    /// nothing and returns `duplicate: true`, which makes redelivery after a crash harmless.
    pub async fn publish(&self, subject: &str, msg_id: &str, payload: &[u8]) -> Result<PubAck, NatsError> {
        check_subject(subject, false)?;
        let reply = self.request(subject, &[("Nats-Msg-Id", msg_id)], payload).await?;
        if let Some((code, description)) = reply.status {
            return Err(match code {
                503 => NatsError::NoStream(subject.to_owned()),
                _ => NatsError::Status { code, description },
            });
        }
        parse_api_reply(&reply.message.payload)
    }

    /// Creates (or confirms, if identical) a durable pull consumer that acknowledges explicitly
    /// and starts from the stream's first message.
    pub async fn create_consumer(
        &self,
        stream: &str,
        durable_name: &str,
        filter_subject: &str,
    ) -> Result<(), NatsError> {
        check_name(stream)?;
        check_name(durable_name)?;
        check_subject(filter_subject, true)?;
        let request = json!({
            "stream_name": stream,
            "config": {
                "durable_name": durable_name,
                "ack_policy": "explicit",
                "deliver_policy": "all",
                "filter_subject": filter_subject,
            },
        });
        self.js_request::<Value>(&format!("$JS.API.CONSUMER.CREATE.{stream}.{durable_name}"), &request).await?;
        Ok(())
    }

    /// Pulls up to `batch` messages from a pull consumer, waiting at most `expires` for them to
    /// arrive. A zero `expires` asks the server not to wait at all (`no_wait`). Fewer messages
    /// than `batch`, including none, is not an error. nats-server 2.9 does not answer a pull
    /// from a consumer that does not exist, so that case is reported as `NoConsumer` only after
    /// `expires` plus the request timeout.
    pub async fn fetch(
        &self,
        stream: &str,
        consumer: &str,
        batch: usize,
        expires: Duration,
    ) -> Result<Vec<Message>, NatsError> {
        check_name(stream)?;
        check_name(consumer)?;
        if batch == 0 {
            return Ok(Vec::new());
        }
        let request = if expires.is_zero() {
            json!({ "batch": batch, "no_wait": true })
        } else {
            json!({ "batch": batch, "expires": nanos(expires) })
        };
        let n = self.next_token.fetch_add(1, Ordering::Relaxed);
        // Four tokens, so the shared `<prefix>.*` subscription does not also receive these.
        let sid = format!("p{n}");
        let mut route = self.route(RouteKey::Sid(sid.clone()), format!("{}.pull.{n}", self.inbox_prefix))?;
        let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
        let mut command = format!("SUB {} {sid}\r\n", route.reply).into_bytes();
        command.extend(encode_pub(
            &subject,
            Some(&route.reply),
            &[],
            &serde_json::to_vec(&request)?,
            self.max_payload,
        )?);
        self.shared.write(&command).await?;

        let pulled = self.collect_batch(&mut route, batch, expires, stream, consumer).await;
        // If this write fails the connection is gone, and the subscription with it. (A fetch
        // cancelled before this point leaves its subscription until the connection closes; the
        // reader drops what arrives on it.)
        let _ = self.shared.write(format!("UNSUB {sid}\r\n").as_bytes()).await;
        pulled
    }

    /// Receives a fetch's messages until the batch is full or the server ends it with a status.
    async fn collect_batch(
        &self,
        route: &mut Route<'_>,
        batch: usize,
        expires: Duration,
        stream: &str,
        consumer: &str,
    ) -> Result<Vec<Message>, NatsError> {
        // A short batch ends with a 404 or 408 status; the deadline catches a request nothing
        // answers, which is what nats-server 2.9 does for a consumer that does not exist.
        let deadline = Instant::now() + expires + self.timeout;
        let mut messages = Vec::new();
        while messages.len() < batch {
            let Ok(next) = timeout_at(deadline, route.rx.recv()).await else {
                if messages.is_empty() {
                    return Err(self.diagnose_silent_consumer(stream, consumer).await);
                }
                break;
            };
            let incoming = next.ok_or_else(|| self.closed_error())?;
            match incoming.status {
                None => messages.push(incoming.message),
                Some((404 | 408, _)) => break,
                // An idle heartbeat.
                Some((100, _)) => {}
                Some((code, description)) => return Err(NatsError::Status { code, description }),
            }
        }
        Ok(messages)
    }

    /// Why a pull request got no answer at all: usually the consumer does not exist.
    async fn diagnose_silent_consumer(&self, stream: &str, consumer: &str) -> NatsError {
        let subject = format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}");
        match self.js_request::<Value>(&subject, &json!({})).await {
            Err(NatsError::JetStream { err_code: CONSUMER_NOT_FOUND | STREAM_NOT_FOUND, .. }) => {
                NatsError::NoConsumer { stream: stream.to_owned(), consumer: consumer.to_owned() }
            }
            Err(other) => other,
            Ok(_) => NatsError::Timeout {
                subject: format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
                timeout: self.timeout,
            },
        }
    }

    /// Acknowledges a consumer's message and waits until the server has recorded it, so that
    /// a crash right after cannot bring the message back.
    pub async fn ack(&self, message: &Message) -> Result<(), NatsError> {
        let Some(reply) = &message.reply else {
            return Err(NatsError::Protocol("the message has no reply subject to acknowledge".to_owned()));
        };
        check_subject(reply, false)?;
        self.request(reply, &[], b"+ACK").await?;
        Ok(())
    }

    /// Sends a JetStream API request and decodes its reply, turning `{"error": ...}` into
    /// `NatsError::JetStream`.
    async fn js_request<T: DeserializeOwned>(&self, subject: &str, body: &Value) -> Result<T, NatsError> {
        let reply = self.request(subject, &[], &serde_json::to_vec(body)?).await?;
        match reply.status {
            None => parse_api_reply(&reply.message.payload),
            Some((503, _)) => Err(NatsError::NoResponders(subject.to_owned())),
            Some((code, description)) => Err(NatsError::Status { code, description }),
        }
    }

    /// Publishes with a fresh reply subject and waits for the first message sent to it.
    async fn request(&self, subject: &str, headers: &[(&str, &str)], payload: &[u8]) -> Result<Incoming, NatsError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed).to_string();
        let reply = format!("{}.{token}", self.inbox_prefix);
        let mut route = self.route(RouteKey::Token(token), reply)?;
        self.shared.write(&encode_pub(subject, Some(&route.reply), headers, payload, self.max_payload)?).await?;
        match timeout(self.timeout, route.rx.recv()).await {
            Ok(Some(incoming)) => Ok(incoming),
            Ok(None) => Err(self.closed_error()),
            Err(_) => Err(NatsError::Timeout { subject: subject.to_owned(), timeout: self.timeout }),
        }
    }

    fn route(&self, key: RouteKey, reply: String) -> Result<Route<'_>, NatsError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routes = self.shared.routes();
        if let Some(reason) = &routes.closed {
            return Err(NatsError::Closed(reason.clone()));
        }
        match &key {
            RouteKey::Token(token) => routes.by_token.insert(token.clone(), tx),
            RouteKey::Sid(sid) => routes.by_sid.insert(sid.clone(), tx),
        };
        drop(routes);
        Ok(Route { shared: &self.shared, key, reply, rx })
    }

    fn closed_error(&self) -> NatsError {
        NatsError::Closed(self.shared.routes().closed.clone().unwrap_or_else(|| "reader stopped".to_owned()))
    }
}

impl From<StreamInfoReply> for StreamInfo {
    fn from(reply: StreamInfoReply) -> Self {
        Self {
            name: reply.config.name,
            subjects: reply.config.subjects,
            duplicate_window: Duration::from_nanos(reply.config.duplicate_window),
            messages: reply.state.messages,
            last_seq: reply.state.last_seq,
        }
    }
}

fn parse_api_reply<T: DeserializeOwned>(payload: &[u8]) -> Result<T, NatsError> {
    let value: Value = serde_json::from_slice(payload)?;
    if let Some(error) = value.get("error") {
        let error = ApiError::deserialize(error)?;
        return Err(NatsError::JetStream {
            code: error.code,
            err_code: error.err_code,
            description: error.description,
        });
    }
    Ok(T::deserialize(value)?)
}

/// `host:port` from the accepted URL forms.
fn parse_url(url: &str) -> Result<String, NatsError> {
    let invalid = || NatsError::InvalidUrl(url.to_owned());
    let rest = match url.split_once("://") {
        Some(("nats", rest)) => rest,
        Some(_) => return Err(invalid()),
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['@', '/', '?', '#']) || rest.contains(char::is_whitespace) {
        return Err(invalid());
    }
    // Split at the last colon so that a bracketed IPv6 address keeps its own colons.
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            port.parse::<u16>().map_err(|_| invalid())?;
            Ok(rest.to_owned())
        }
        Some(_) => Err(invalid()),
        None => Ok(format!("{rest}:{DEFAULT_PORT}")),
    }
}

/// Subjects go verbatim into protocol lines, so anything that could split a line is refused.
fn check_subject(subject: &str, wildcards: bool) -> Result<(), NatsError> {
    let valid = !subject.is_empty()
        && !subject.contains(|c: char| c.is_whitespace() || c.is_control())
        && subject.split('.').all(|token| !token.is_empty() && (wildcards || (token != "*" && token != ">")));
    if valid { Ok(()) } else { Err(NatsError::InvalidSubject(subject.to_owned())) }
}

/// Stream and consumer names become subject tokens in the JetStream API.
fn check_name(name: &str) -> Result<(), NatsError> {
    let valid = !name.is_empty()
        && !name.contains(|c: char| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control());
    if valid { Ok(()) } else { Err(NatsError::InvalidName(name.to_owned())) }
}

/// Go's `time.Duration`, which JetStream's JSON uses, is an `int64` of nanoseconds.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX).min(i64::MAX.unsigned_abs())
}

fn random_u64() -> Result<u64, NatsError> {
    getrandom::u64().map_err(|e| NatsError::Io(io::Error::other(e.to_string())))
}

/// `PUB`, or `HPUB` when there are headers, as one buffer so concurrent writers cannot interleave.
///
/// Oversized messages are refused here because the server answers them with an `-ERR` that
/// closes the connection, failing every other request in flight.
fn encode_pub(
    subject: &str,
    reply: Option<&str>,
    headers: &[(&str, &str)],
    payload: &[u8],
    max_payload: usize,
) -> Result<Vec<u8>, NatsError> {
    let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 128);
    let too_large = |size| NatsError::PayloadTooLarge { size, max: max_payload };
    if headers.is_empty() {
        if payload.len() > max_payload {
            return Err(too_large(payload.len()));
        }
        out.extend_from_slice(format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes());
    } else {
        let mut block = String::from("NATS/1.0\r\n");
        for (name, value) in headers {
            if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
                return Err(NatsError::InvalidHeader);
            }
            block.push_str(&format!("{name}: {value}\r\n"));
        }
        block.push_str("\r\n");
        let total = block.len() + payload.len();
        if total > max_payload {
            return Err(too_large(total));
        }
        out.extend_from_slice(format!("HPUB {subject}{reply} {} {total}\r\n", block.len()).as_bytes());
        out.extend_from_slice(block.as_bytes());
    }
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// One operation from the server.
enum ServerOp {
    Info(String),
    Ping,
    Pong,
    Ok,
    Err(String),
    Msg { sid: String, incoming: Incoming },
}

/// Reads `INFO`, sends `CONNECT` and a `PING`, and waits for the `PONG` that proves the server
/// accepted the connection (an `-ERR` arrives first otherwise).
async fn handshake(
    reader: &mut BufReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
) -> Result<ServerInfo, NatsError> {
    let ServerOp::Info(json) = read_op(reader).await? else {
        return Err(NatsError::Protocol("the server did not start with INFO: is this a NATS server?".to_owned()));
    };
    let info: ServerInfo = serde_json::from_str(&json).map_err(|e| NatsError::Protocol(format!("bad INFO: {e}")))?;
    if info.tls_required {
        return Err(NatsError::Protocol("the server requires TLS, which this client does not speak".to_owned()));
    }
    if !info.headers {
        return Err(NatsError::Protocol("the server does not support headers (NATS 2.2+ is needed)".to_owned()));
    }
    let connect = json!({
        "verbose": false,
        "pedantic": false,
        "headers": true,
        "no_responders": true,
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
    });
    writer.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes()).await?;
    loop {
        match read_op(reader).await? {
            ServerOp::Pong => return Ok(info),
            ServerOp::Ping => writer.write_all(b"PONG\r\n").await?,
            ServerOp::Err(reason) => return Err(NatsError::Protocol(reason)),
            ServerOp::Info(_) | ServerOp::Ok | ServerOp::Msg { .. } => {}
        }
    }
}

async fn read_loop(mut reader: BufReader<OwnedReadHalf>, shared: Arc<Shared>) {
    let reason = loop {
        let op = match read_op(&mut reader).await {
            Ok(op) => op,
            Err(error) => break error.to_string(),
        };
        match op {
            ServerOp::Ping => {
                if let Err(error) = shared.write(b"PONG\r\n").await {
                    break error.to_string();
                }
            }
            ServerOp::Msg { sid, incoming } => {
                let routes = shared.routes();
                let route = if sid == INBOX_SID {
                    let token = incoming.message.subject.rsplit('.').next().unwrap_or_default();
                    routes.by_token.get(token)
                } else {
                    routes.by_sid.get(&sid)
                };
                // A reply for a request that already timed out has no route: drop it.
                if let Some(tx) = route {
                    let _ = tx.send(incoming);
                }
            }
            ServerOp::Err(reason) => {
                // Most -ERRs close the connection, and the read that follows reports it; the
                // rest (such as a permissions violation) concern one publish, whose request
                // then times out.
                tracing::warn!(error = %reason, "NATS server reported an error");
            }
            ServerOp::Info(_) | ServerOp::Pong | ServerOp::Ok => {}
        }
    };
    tracing::debug!(%reason, "NATS connection closed");
    let mut routes = shared.routes();
    routes.closed = Some(reason);
    // Dropping the senders wakes every waiting request with "closed".
    routes.by_token.clear();
    routes.by_sid.clear();
}

async fn read_op(reader: &mut BufReader<OwnedReadHalf>) -> Result<ServerOp, NatsError> {
    let line = read_line(reader).await?;
    let (verb, args) = line.split_once([' ', '\t']).unwrap_or((line.as_str(), ""));
    let args = args.trim_start();
    match verb.to_ascii_uppercase().as_str() {
        "INFO" => Ok(ServerOp::Info(args.to_owned())),
        "PING" => Ok(ServerOp::Ping),
        "PONG" => Ok(ServerOp::Pong),
        "+OK" => Ok(ServerOp::Ok),
        "-ERR" => Ok(ServerOp::Err(args.trim_matches('\'').to_owned())),
        "MSG" => read_msg(reader, args, false).await,
        "HMSG" => read_msg(reader, args, true).await,
        _ => Err(NatsError::Protocol(format!("unknown operation `{verb}`"))),
    }
}

async fn read_line(reader: &mut BufReader<OwnedReadHalf>) -> Result<String, NatsError> {
    let mut line = Vec::new();
    let read = (&mut *reader).take(MAX_CONTROL_LINE).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Err(NatsError::Closed("the server closed the connection".to_owned()));
    }
    if line.last() != Some(&b'\n') {
        return Err(NatsError::Protocol("control line too long or cut short".to_owned()));
    }
    let line = String::from_utf8(line).map_err(|_| NatsError::Protocol("control line is not UTF-8".to_owned()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `MSG <subject> <sid> [reply] <len>` or `HMSG <subject> <sid> [reply] <hdr_len> <total_len>`,
/// followed by exactly that many bytes and a CRLF.
async fn read_msg(reader: &mut BufReader<OwnedReadHalf>, args: &str, has_headers: bool) -> Result<ServerOp, NatsError> {
    let bad = || NatsError::Protocol(format!("malformed message line `{args}`"));
    let fields: Vec<&str> = args.split_ascii_whitespace().collect();
    let sizes = if has_headers { 2 } else { 1 };
    let (subject, sid, reply, sizes) = match fields.as_slice() {
        [subject, sid, rest @ ..] if rest.len() == sizes => (*subject, *sid, None, rest),
        [subject, sid, reply, rest @ ..] if rest.len() == sizes => (*subject, *sid, Some(*reply), rest),
        _ => return Err(bad()),
    };
    let sizes: Vec<usize> = sizes.iter().map(|n| n.parse::<usize>().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let (header_len, total_len) = match sizes.as_slice() {
        [total] => (0, *total),
        [header, total] if header <= total => (*header, *total),
        _ => return Err(bad()),
    };
    if total_len > MAX_INCOMING {
        return Err(NatsError::Protocol(format!("message of {total_len} bytes is larger than any NATS server sends")));
    }
    let mut body = vec![0u8; total_len + 2];
    reader.read_exact(&mut body).await?;
    if !body.ends_with(b"\r\n") {
        return Err(NatsError::Protocol("message payload not followed by CRLF".to_owned()));
    }
    body.truncate(total_len);
    let payload = body.split_off(header_len);
    let (status, headers) = if has_headers { parse_headers(&body)? } else { (None, Vec::new()) };
    let message = Message { subject: subject.to_owned(), headers, payload, reply: reply.map(str::to_owned) };
    Ok(ServerOp::Msg { sid: sid.to_owned(), incoming: Incoming { message, status } })
}

type Headers = Vec<(String, String)>;

/// `NATS/1.0[ <status>[ <description>]]` then `Name: value` lines and an empty line.
fn parse_headers(block: &[u8]) -> Result<(Option<(u16, String)>, Headers), NatsError> {
    let text = std::str::from_utf8(block).map_err(|_| NatsError::Protocol("headers are not UTF-8".to_owned()))?;
    let mut lines = text.split("\r\n");
    let version_line = lines.next().unwrap_or_default();
    let Some(status_part) = version_line.strip_prefix("NATS/1.0") else {
        return Err(NatsError::Protocol(format!("unknown header version line `{version_line}`")));
    };
    let status_part = status_part.trim();
    let status = if status_part.is_empty() {
        None
    } else {
        let (code, description) = status_part.split_once(' ').unwrap_or((status_part, ""));
        let code = code.parse().map_err(|_| NatsError::Protocol(format!("bad status line `{version_line}`")))?;
        Some((code, description.trim().to_owned()))
    };
    let headers = lines
        .filter(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_accept_the_documented_forms() {
        assert_eq!(parse_url("nats://127.0.0.1:4222").unwrap(), "127.0.0.1:4222");
        assert_eq!(parse_url("nats://broker:4333/").unwrap(), "broker:4333");
        assert_eq!(parse_url("localhost:4222").unwrap(), "localhost:4222");
        assert_eq!(parse_url("localhost").unwrap(), "localhost:4222");
        assert_eq!(parse_url("[::1]:4222").unwrap(), "[::1]:4222");
        for bad in ["", "nats://", "tls://host:4222", "nats://user:pw@host:4222", "host:port", "host:99999", ":4222"] {
            assert!(matches!(parse_url(bad), Err(NatsError::InvalidUrl(_))), "{bad:?}");
        }
    }

    #[test]
    fn subjects_and_names_that_could_break_a_protocol_line_are_refused() {
        assert!(check_subject("assent.events.acme", false).is_ok());
        assert!(check_subject("assent.events.>", true).is_ok());
        for bad in ["", "a b", "a\r\nPUB x 1", "a..b", ".a", "a."] {
            assert!(check_subject(bad, true).is_err(), "{bad:?}");
        }
        assert!(check_subject("assent.*", false).is_err());
        assert!(check_name("ASSENT_EVENTS").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hpub_carries_the_header_block_and_its_lengths() {
        let bytes = encode_pub("s.t", Some("_INBOX.x.1"), &[("Nats-Msg-Id", "abc")], b"hello", 1024).unwrap();
        let headers = "NATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n";
        let expected = format!("HPUB s.t _INBOX.x.1 {} {}\r\n{headers}hello\r\n", headers.len(), headers.len() + 5);
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
        assert_eq!(encode_pub("s", None, &[], b"", 1024).unwrap(), b"PUB s 0\r\n\r\n");
        let bad_header = encode_pub("s", None, &[("Nats-Msg-Id", "a\r\nb")], b"", 1024);
        assert!(matches!(bad_header, Err(NatsError::InvalidHeader)), "{bad_header:?}");
    }

    #[test]
    fn oversized_messages_are_refused_before_they_reach_the_server() {
        assert!(encode_pub("s", None, &[], &[0; 8], 8).is_ok());
        assert!(matches!(encode_pub("s", None, &[], &[0; 9], 8), Err(NatsError::PayloadTooLarge { size: 9, max: 8 })));
        // Headers count towards the limit.
        let with_id = encode_pub("s", None, &[("Nats-Msg-Id", "x")], &[0; 8], 20);
        assert!(matches!(with_id, Err(NatsError::PayloadTooLarge { size: 36, max: 20 })), "{with_id:?}");
    }

    #[test]
    fn header_blocks_yield_status_and_headers() {
        let (status, headers) = parse_headers(b"NATS/1.0 503\r\n\r\n").unwrap();
        assert_eq!(status, Some((503, String::new())));
        assert!(headers.is_empty());
        let (status, headers) =
            parse_headers(b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n").unwrap();
        assert_eq!(status, Some((408, "Request Timeout".to_owned())));
        assert_eq!(headers, vec![("Nats-Pending-Messages".to_owned(), "1".to_owned())]);
        let (status, headers) = parse_headers(b"NATS/1.0\r\nNats-Msg-Id: m-1\r\n\r\n").unwrap();
        assert_eq!(status, None);
        assert_eq!(headers, vec![("Nats-Msg-Id".to_owned(), "m-1".to_owned())]);
        assert!(parse_headers(b"HTTP/1.1 200\r\n\r\n").is_err());
    }

    #[test]
    fn api_errors_become_typed_errors() {
        let reply = br#"{"type":"x","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#;
        let error = parse_api_reply::<Value>(reply).unwrap_err();
        assert!(matches!(error, NatsError::JetStream { code: 404, err_code: STREAM_NOT_FOUND, .. }), "{error:?}");
        let ack: PubAck = parse_api_reply(br#"{"stream":"S","seq":5,"duplicate":true}"#).unwrap();
        assert_eq!(ack, PubAck { stream: "S".to_owned(), seq: 5, duplicate: true });
        let ack: PubAck = parse_api_reply(br#"{"stream":"S","seq":6}"#).unwrap();
        assert!(!ack.duplicate);
    }

    #[test]
    fn message_debug_hides_the_payload() {
        let message = Message { subject: "s".to_owned(), headers: vec![], payload: b"secret".to_vec(), reply: None };
        let shown = format!("{message:?}");
        assert!(shown.contains("payload_len: 6") && !shown.contains("secret"), "{shown}");
    }
}
