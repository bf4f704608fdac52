//! A loopback stand-in for DynamoDB and S3 for the benchmarks (`bench/bench.py`).
//!
//! It answers `BatchGetItem` (every requested record exists, in ALBUM, with one
//! object), `BatchWriteItem` (nothing unprocessed) and `DeleteObjects` (nothing
//! failed) after a fixed delay per request, and counts requests, concurrent waves
//! (times the number in flight rose from zero) and new connections (those that
//! carried at least one AWS request). Written in Rust so that the stand-in, not the
//! function under test, is never the bottleneck.
//!
//! Usage: fake-aws DELAY_MS ALBUM [CA_PEM_OUT]  -- prints the port it listens on, then
//! serves. `GET /__stats` returns the counters as JSON; `POST /__reset` zeroes them.
//! Each answer is worked out as its request arrives and sent DELAY_MS after that, to
//! within a fraction of a millisecond (`late_ms` in `/__stats`: per operation, the
//! most an answer went out after its due time). With `FAKE_AWS_TRACE` set, `/__stats` also
//! lists every request's operation and Unix times (s): head in, body in, answer
//! ready, answer due (where a request's time goes, wave by wave).
//!
//! Album mode (`FAKE_AWS_ALBUM_IMAGES=N`): ALBUM holds N images of
//! `FAKE_AWS_OBJECTS_PER_IMAGE` objects each, kept as state: `Query` pages through
//! them, `BatchGetItem` answers from them, deletes remove them. It enforces the two
//! rates that bound an album cleanup: S3 `FAKE_AWS_S3_KEYS_PER_S` keys deleted per
//! second per prefix (every key of an album shares `albums/<album>/`; above it a call
//! gets 503 `SlowDown`, or the keys beyond the budget a per-key `SlowDown`) and
//! DynamoDB `FAKE_AWS_DDB_WRITES_PER_S` items written per second (above it,
//! `ThrottlingException`). `/__stats` adds what is left and a timeline of records
//! deleted per 250 ms.
//!
//! With CA_PEM_OUT it also serves HTTPS, as AWS endpoints do, under a throwaway CA
//! (root and intermediate, as AWS chains are): RSA 2048 from `FAKE_AWS_TLS_CHAIN`
//! when the bench made one, else ECDSA P-256 made here. It writes the root to
//! CA_PEM_OUT for the client to trust
//! (`AWS_CA_BUNDLE`), and prints a second line: the TLS port (certificate for
//! `localhost` and 127.0.0.1). TLS handshakes are counted, full and resumed apart.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

#[derive(Default)]
struct Stats {
    tls_full: u64,
    tls_resumed: u64,
    requests: u64,
    by_operation: BTreeMap<&'static str, u64>,
    /// Per operation, the most that an answer was sent after its due time (ms): what
    /// this stand-in added to D, to be read beside the wall rows.
    late_ms: BTreeMap<&'static str, f64>,
    connections: u64,
    waves: u64,
    inflight: u64,
    peak_inflight: u64,
    /// With `FAKE_AWS_TRACE` set: per request, the operation and the Unix times (s) at
    /// which its head arrived, its body was read, its answer was worked out and sent.
    trace: Vec<(&'static str, f64, f64, f64, f64)>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

struct State {
    delay: Duration,
    album: String,
    stats: Mutex<Stats>,
    world: Option<Mutex<World>>,
    trace: bool,
    alarms: Arc<Alarms>,
}

/// A token bucket: `rate` per second, at most one second's worth saved up.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Self {
            rate,
            tokens: rate,
            last: std::time::Instant::now(),
        }
    }

    /// Up to `n` tokens, as many as there are.
    fn take(&mut self, n: usize) -> usize {
        let now = std::time::Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        let granted = (self.tokens.floor() as usize).min(n);
        self.tokens -= granted as f64;
        granted
    }
}

/// Album mode's state and limits.
struct World {
    /// id -> object keys, in id order (the album index's order here).
    records: BTreeMap<String, Vec<String>>,
    objects: std::collections::HashSet<String>,
    s3: Bucket,
    ddb: Bucket,
    started: std::time::Instant,
    /// Records deleted per 250 ms since start.
    timeline: Vec<u64>,
    slowdown_calls: u64,
    slowdown_keys: u64,
    throttled_writes: u64,
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl World {
    fn from_env(album: &str) -> Option<Self> {
        let images = env_number("FAKE_AWS_ALBUM_IMAGES", 0.0) as usize;
        if images == 0 {
            return None;
        }
        let per_image = env_number("FAKE_AWS_OBJECTS_PER_IMAGE", 2.0) as usize;
        let mut records = BTreeMap::new();
        let mut objects = std::collections::HashSet::new();
        for i in 0..images {
            let id = format!("5e1f0000-0000-4000-8000-{i:012}");
            let keys: Vec<String> = (0..per_image)
                .map(|k| format!("albums/{album}/{id}/{k}.jpg"))
                .collect();
            objects.extend(keys.iter().cloned());
            records.insert(id, keys);
        }
        Some(Self {
            records,
            objects,
            s3: Bucket::new(env_number("FAKE_AWS_S3_KEYS_PER_S", 3500.0)),
            ddb: Bucket::new(env_number("FAKE_AWS_DDB_WRITES_PER_S", 4000.0)),
            started: std::time::Instant::now(),
            timeline: Vec::new(),
            slowdown_calls: 0,
            slowdown_keys: 0,
            throttled_writes: 0,
        })
    }

    fn record(&self, id: &str, album: &str) -> Option<Value> {
        self.records.get(id).map(
            |keys| json!({"id": {"S": id}, "album_id": {"S": album}, "object_keys": {"SS": keys}}),
        )
    }

    fn query(&self, request: &Value, album: &str) -> Value {
        let limit = request["Limit"].as_u64().unwrap_or(1000) as usize;
        let start = request["ExclusiveStartKey"]["id"]["S"].as_str();
        let range = match start {
            Some(after) => self
                .records
                .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => self.records.range::<str, _>(..),
        };
        let ids: Vec<&String> = range.take(limit + 1).map(|(id, _)| id).collect();
        let page = &ids[..ids.len().min(limit)];
        let items: Vec<Value> = page
            .iter()
            .map(|id| json!({"id": {"S": id}, "album_id": {"S": album}}))
            .collect();
        let mut answer = json!({"Items": items, "Count": page.len()});
        if ids.len() > limit {
            let last = page[page.len() - 1];
            answer["LastEvaluatedKey"] = json!({"id": {"S": last}, "album_id": {"S": album}});
        }
        answer
    }

    /// All or nothing, as DynamoDB throttles a whole call.
    fn batch_write(&mut self, request: &Value) -> bool {
        let ids: Vec<String> = request["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .flat_map(|writes| writes.as_array().cloned().unwrap_or_default())
            .filter_map(|w| {
                w["DeleteRequest"]["Key"]["id"]["S"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        let granted = self.ddb.take(ids.len());
        if granted < ids.len() {
            self.throttled_writes += 1;
            self.ddb.tokens += granted as f64; // a refused call spends nothing
            return false;
        }
        let mut removed = 0;
        for id in ids {
            removed += u64::from(self.records.remove(&id).is_some());
        }
        let slot = (self.started.elapsed().as_millis() / 250) as usize;
        if self.timeline.len() <= slot {
            self.timeline.resize(slot + 1, 0);
        }
        self.timeline[slot] += removed;
        true
    }

    /// Deletes what the prefix's budget allows; the keys beyond it get `SlowDown`.
    fn delete_objects(&mut self, keys: Vec<String>) -> Option<Vec<String>> {
        let granted = self.s3.take(keys.len());
        if granted == 0 {
            self.slowdown_calls += 1;
            return None;
        }
        let refused = keys[granted..].to_vec();
        self.slowdown_keys += refused.len() as u64;
        for key in &keys[..granted] {
            self.objects.remove(key);
        }
        Some(refused)
    }
}

/// A BatchGetItem answer: `record` of each requested id, where it has one.
fn batch_get_answer(request: &Value, record: impl Fn(&str) -> Option<Value>) -> String {
    let mut responses = serde_json::Map::new();
    for (table, spec) in request["RequestItems"].as_object().into_iter().flatten() {
        let items: Vec<Value> = spec["Keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|key| record(key["id"]["S"].as_str().unwrap_or_default()))
            .collect();
        responses.insert(table.clone(), Value::Array(items));
    }
    json!({"Responses": responses, "UnprocessedKeys": {}}).to_string()
}

/// A BatchGetItem answer in which every requested id's record exists, in `album`,
/// with one object. Ids are UUIDs here, so they need no JSON escaping.
fn fixed_batch_get_answer(body: &[u8], album: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(rename = "RequestItems", borrow)]
        items: BTreeMap<&'a str, Spec<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Spec<'a> {
        #[serde(rename = "Keys", borrow)]
        keys: Vec<BTreeMap<&'a str, BTreeMap<&'a str, &'a str>>>,
    }
    let Ok(request) = serde_json::from_slice::<Request>(body) else {
        return r#"{"Responses":{},"UnprocessedKeys":{}}"#.to_owned();
    };
    let mut out = String::with_capacity(64 + 160 * 100);
    out.push_str(r#"{"Responses":{"#);
    for (t, (table, spec)) in request.items.iter().enumerate() {
        if t > 0 {
            out.push(',');
        }
        out.push_str(&format!("{}:[", serde_json::Value::from(*table)));
        let ids = spec.keys.iter().filter_map(|k| k.get("id")?.get("S"));
        for (i, id) in ids.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                r#"{{"id":{{"S":"{id}"}},"album_id":{{"S":"{album}"}},"object_keys":{{"SS":["albums/{album}/{id}/original.jpg"]}}}}"#
            ));
        }
        out.push(']');
    }
    out.push_str(r#"},"UnprocessedKeys":{}}"#);
    out
}

/// The `<Key>` values of a DeleteObjects body, unescaped.
fn xml_keys(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key))
        .map(|key| {
            key.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("a valid response")
}

impl State {
    fn answer(
        &self,
        target: &str,
        query: &str,
        body: &[u8],
    ) -> (&'static str, Response<Full<Bytes>>) {
        const JSON: &str = "application/x-amz-json-1.0";
        if let Some(world) = &self.world {
            return self.answer_album(&mut world.lock().unwrap(), target, query, body);
        }
        if target.ends_with(".BatchGetItem") {
            // Every requested record exists, in ALBUM, with one object. Written out
            // directly: a Value per record cost 4 µs each, 0.4 ms per call here.
            let answer = fixed_batch_get_answer(body, &self.album);
            ("BatchGetItem", reply(200, JSON, answer))
        } else if target.ends_with(".BatchWriteItem") {
            (
                "BatchWriteItem",
                reply(200, JSON, r#"{"UnprocessedItems":{}}"#),
            )
        } else if query
            .split('&')
            .any(|p| p == "delete" || p.starts_with("delete="))
        {
            let answer = r#"<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>"#;
            ("DeleteObjects", reply(200, "application/xml", answer))
        } else {
            (
                "unexpected",
                reply(400, JSON, r#"{"__type":"UnknownOperationException"}"#),
            )
        }
    }

    /// Album mode's answers, from and to the world's state.
    fn answer_album(
        &self,
        world: &mut World,
        target: &str,
        query: &str,
        body: &[u8],
    ) -> (&'static str, Response<Full<Bytes>>) {
        const JSON: &str = "application/x-amz-json-1.0";
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if target.ends_with(".Query") {
            let answer = world.query(&request, &self.album);
            ("Query", reply(200, JSON, answer.to_string()))
        } else if target.ends_with(".BatchGetItem") {
            let answer = batch_get_answer(&request, |id| world.record(id, &self.album));
            ("BatchGetItem", reply(200, JSON, answer))
        } else if target.ends_with(".BatchWriteItem") {
            if world.batch_write(&request) {
                (
                    "BatchWriteItem",
                    reply(200, JSON, r#"{"UnprocessedItems":{}}"#),
                )
            } else {
                let throttled = r#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Throughput exceeds the current capacity of your table or index."}"#;
                ("BatchWriteItem throttled", reply(400, JSON, throttled))
            }
        } else if query
            .split('&')
            .any(|p| p == "delete" || p.starts_with("delete="))
        {
            match world.delete_objects(xml_keys(body)) {
                None => {
                    let slow = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    (
                        "DeleteObjects SlowDown",
                        reply(503, "application/xml", slow),
                    )
                }
                Some(refused) => {
                    let errors: String = refused
                        .iter()
                        .map(|k| format!("<Error><Key>{}</Key><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>", xml_escape(k)))
                        .collect();
                    let answer = format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{errors}</DeleteResult>"
                    );
                    ("DeleteObjects", reply(200, "application/xml", answer))
                }
            }
        } else if target.ends_with(".SendMessage") {
            // The hand-off of an unfinished album (counted: the bench expects none).
            (
                "SendMessage",
                reply(
                    200,
                    JSON,
                    r#"{"MessageId":"00000000-0000-0000-0000-000000000000"}"#,
                ),
            )
        } else {
            (
                "unexpected",
                reply(400, JSON, r#"{"__type":"UnknownOperationException"}"#),
            )
        }
    }

    fn stats_json(&self) -> String {
        let s = self.stats.lock().unwrap();
        let album = self.world.as_ref().map(|w| {
            let w = w.lock().unwrap();
            json!({
                "images_left": w.records.len(),
                "objects_left": w.objects.len(),
                "timeline_250ms": w.timeline,
                "slowdown_calls": w.slowdown_calls,
                "slowdown_keys": w.slowdown_keys,
                "throttled_writes": w.throttled_writes,
            })
        });
        json!({
            "album": album,
            "requests": s.requests,
            "by_operation": s.by_operation,
            "late_ms": s.late_ms,
            "connections": s.connections,
            "waves": s.waves,
            "peak_inflight": s.peak_inflight,
            "tls_full": s.tls_full,
            "tls_resumed": s.tls_resumed,
            "trace": s.trace,
        })
        .to_string()
    }
}

async fn handle(
    state: Arc<State>,
    counted: Arc<AtomicBool>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let head_at = unix_now();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(400, "text/plain", "unreadable body")),
    };
    match path.as_str() {
        "/__stats" => return Ok(reply(200, "application/json", state.stats_json())),
        "/__reset" => {
            *state.stats.lock().unwrap() = Stats::default();
            return Ok(reply(200, "application/json", "{}"));
        }
        _ => {}
    }
    {
        let mut s = state.stats.lock().unwrap();
        // A connection counts once it carries an AWS request: the benchmark's own
        // `/__stats` and `/__reset` calls come on connections of their own.
        if !counted.swap(true, Ordering::Relaxed) {
            s.connections += 1;
        }
        if s.inflight == 0 {
            s.waves += 1;
        }
        s.inflight += 1;
        s.peak_inflight = s.peak_inflight.max(s.inflight);
        s.requests += 1;
    }
    let body_at = unix_now();
    // D is the service's latency from the whole request to its answer. The answer is
    // worked out first and sent D after the request arrived: on this one thread,
    // answers worked out after the wait would queue behind each other, a delay that
    // AWS's many servers do not add. The wait is `Alarms`', not tokio's timer, which
    // rounds up to whole milliseconds.
    let due = std::time::Instant::now() + state.delay;
    // Requests that arrived together are each timed from their own arrival: the
    // others' bodies are read first, then the answers worked out.
    tokio::task::yield_now().await;
    let (operation, response) = state.answer(&target, &query, &body);
    let answered_at = unix_now();
    state.alarms.wait_until(due).await;
    let late = std::time::Instant::now().saturating_duration_since(due);
    let mut s = state.stats.lock().unwrap();
    s.inflight -= 1;
    *s.by_operation.entry(operation).or_default() += 1;
    let latest = s.late_ms.entry(operation).or_default();
    *latest = latest.max(late.as_secs_f64() * 1000.0);
    if state.trace {
        s.trace
            .push((operation, head_at, body_at, answered_at, unix_now()));
    }
    Ok(response)
}

/// One waiting answer: its due time, its place in the order of arrival, and the task
/// to wake.
struct Due {
    at: std::time::Instant,
    seq: u64,
    wake: tokio::sync::oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed, so that `BinaryHeap` pops the earliest first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Wakes each waiting answer at its due time, to within tens of microseconds: one
/// thread, started with the server, sleeps until the earliest due time. tokio's timer
/// rounds up to whole milliseconds; a thread per answer (`spawn_blocking`) had to be
/// started first on a fresh server (every answer of a first request) and made 40
/// threads wake at once at bound 40: answers were up to 3 ms late.
struct Alarms {
    queue: Mutex<(std::collections::BinaryHeap<Due>, u64)>,
    changed: std::sync::Condvar,
}

impl Alarms {
    fn start() -> Arc<Self> {
        let alarms = Arc::new(Self {
            queue: Mutex::default(),
            changed: std::sync::Condvar::new(),
        });
        let ringing = alarms.clone();
        std::thread::spawn(move || ringing.run());
        alarms
    }

    /// Returns at `due`.
    async fn wait_until(&self, due: std::time::Instant) {
        if due <= std::time::Instant::now() {
            return;
        }
        let (wake, woken) = tokio::sync::oneshot::channel();
        {
            let mut queue = self.queue.lock().unwrap();
            queue.1 += 1;
            let seq = queue.1;
            let earliest = queue.0.peek().is_none_or(|d| due < d.at);
            queue.0.push(Due { at: due, seq, wake });
            if earliest {
                self.changed.notify_one();
            }
        }
        let _ = woken.await;
    }

    fn run(&self) {
        // The kernel's default slack lets a sleeping thread wake up to 50 us late.
        // SAFETY: PR_SET_TIMERSLACK sets this thread's timer slack; no memory is passed.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        }
        let mut queue = self.queue.lock().unwrap();
        loop {
            let now = std::time::Instant::now();
            while queue.0.peek().is_some_and(|d| d.at <= now) {
                if let Some(due) = queue.0.pop() {
                    let _ = due.wake.send(());
                }
            }
            queue = match queue.0.peek().map(|d| d.at - now) {
                Some(left) => self.changed.wait_timeout(queue, left).unwrap().0,
                None => self.changed.wait(queue).unwrap(),
            };
        }
    }
}

/// Serves one connection (plain or TLS) until the client closes it.
fn serve<IO>(state: Arc<State>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let counted = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        let service = service_fn(move |request| handle(state.clone(), counted.clone(), request));
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .await;
    });
}

/// The server's rustls config: from `FAKE_AWS_TLS_CHAIN`, a directory holding
/// `leaf.pem`, `mid.pem` and `leaf.key` (the bench makes an RSA 2048 chain there, as
/// AWS endpoints have, with openssl), or else a chain made here (`own_chain`).
fn tls_config(ca_out: &str) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (chain, key) = match std::env::var("FAKE_AWS_TLS_CHAIN") {
        Ok(dir) => {
            let dir = std::path::Path::new(&dir);
            let cert = |name| CertificateDer::from_pem_file(dir.join(name)).expect("a certificate");
            let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).expect("a key");
            std::fs::copy(dir.join("root.pem"), ca_out).expect("the CA file is writable");
            (vec![cert("leaf.pem"), cert("mid.pem")], key)
        }
        Err(_) => own_chain(ca_out),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a server certificate");
    Arc::new(config)
}

/// A root CA, an intermediate signed by it, and a server certificate signed by the
/// intermediate (ECDSA P-256: the only keys ring makes); the root written to `ca_out`.
fn own_chain(
    ca_out: &str,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params
    };
    let root_key = KeyPair::generate().expect("a key");
    let root_params = ca("fake-aws root");
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);
    let mid_key = KeyPair::generate().expect("a key");
    let mid_params = ca("fake-aws intermediate");
    let mid = mid_params
        .signed_by(&mid_key, &root_issuer)
        .expect("intermediate");
    let mid_issuer = Issuer::new(mid_params, mid_key);
    let leaf_key = KeyPair::generate().expect("a key");
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    let leaf = leaf_params.signed_by(&leaf_key, &mid_issuer).expect("leaf");
    std::fs::write(ca_out, root.pem()).expect("the CA file is writable");
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("a key");
    (vec![leaf.der().clone(), mid.der().clone()], key)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let delay_ms: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20.0);
    let album = args.next().unwrap_or_else(|| "00100000123BB121".to_owned());
    let ca_out = args.next();
    let world = World::from_env(&album).map(Mutex::new);
    let state = Arc::new(State {
        delay: Duration::from_secs_f64(delay_ms / 1000.0),
        album,
        stats: Mutex::new(Stats::default()),
        world,
        trace: std::env::var_os("FAKE_AWS_TRACE").is_some(),
        alarms: Alarms::start(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    if let Some(ca_out) = ca_out {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls_config(&ca_out));
        let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", tls.local_addr()?.port());
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tls.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    {
                        let mut s = state.stats.lock().unwrap();
                        match stream.get_ref().1.handshake_kind() {
                            Some(rustls::HandshakeKind::Resumed) => s.tls_resumed += 1,
                            _ => s.tls_full += 1,
                        }
                    }
                    serve(state, stream);
                });
            }
        });
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        serve(state.clone(), stream);
    }
}
