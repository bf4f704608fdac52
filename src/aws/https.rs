//! The HTTP client of every AWS call: HTTP/1.1 over rustls with ring, pooled by
//! hyper, trusting only the root CAs it is given.
//!
//! Ours rather than the SDK's default client because that one always links an HTTP/2
//! stack (h2), which DynamoDB, S3, SQS and Secrets Manager never need from a function
//! that sends a few small requests per call: leaving it out is a large share of the
//! binary (bench/README.md). What the SDK's client does that matters here is kept:
//! a connect timeout that covers the TLS handshake, connections reused across calls
//! and clients, TLS session resumption, and errors classified so that the SDK retries
//! exactly the transient ones (`connector_error`).
//!
//! One thing it adds: connections opened ahead of requests known to come
//! (`ConnectAhead`), so that on a cold start S3's `DeleteObjects` finds its connection
//! open, TLS done, when the records have been read, instead of opening it after.

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The most of an answer's body read into memory; a longer one fails the call. The
/// largest answers this function gets are a `BatchGetItem` of 100 projected records
/// (`id`, `album_id`, `object_keys`: about 100 KiB for images of 1 KiB of keys) and a
/// `DeleteObjects` naming 1000 failed keys (about 1.2 MiB with keys of 1 KiB, S3's
/// longest); 4 MiB is room above both, and ten reads at once stay within 64 MiB.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Why the client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no usable root certificate")]
    NoRoots,
    #[error("TLS set-up")]
    Tls(#[from] rustls::Error),
}

/// The client, trusting exactly the certificates of the PEM bundles given.
pub fn client(pem_bundles: &[&[u8]]) -> Result<SharedHttpClient, ClientError> {
    build(pem_bundles, FRESH_FOR, None).map(|(client, _)| client)
}

/// [`client`], and the handle that opens connections ahead for it, each within
/// `connect_timeout` (that of the SDK's calls: `startup::CONNECT_TIMEOUT`). The handle
/// can open connections before any call has been made.
pub fn client_with_ahead(
    pem_bundles: &[&[u8]],
    connect_timeout: Duration,
) -> Result<(SharedHttpClient, ConnectAhead), ClientError> {
    build(pem_bundles, FRESH_FOR, Some(connect_timeout))
}

fn build(
    pem_bundles: &[&[u8]],
    fresh_for: Duration,
    connect_timeout: Option<Duration>,
) -> Result<(SharedHttpClient, ConnectAhead), ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in pem_bundles {
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(pem).filter_map(Result::ok));
    }
    if roots.is_empty() {
        return Err(ClientError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stock = Arc::new(Stock {
        fresh_for,
        opener: connect_timeout.map(|timeout| opener(tls.clone(), Some(timeout))),
        ..Stock::default()
    });
    let client = SharedHttpClient::new(Https {
        tls,
        connectors: Mutex::default(),
        stock: stock.clone(),
    });
    Ok((client, ConnectAhead(stock)))
}

/// One connector per distinct timeout setting (in practice one): the SDK asks for a
/// connector per operation, and every client of the process shares the pool.
#[derive(Debug)]
struct Https {
    tls: rustls::ClientConfig,
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
    stock: Arc<Stock>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Timeouts {
    connect: Option<Duration>,
    read: Option<Duration>,
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = Timeouts {
            connect: settings.connect_timeout(),
            read: settings.read_timeout(),
        };
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connectors
            .entry(timeouts)
            .or_insert_with(|| {
                let connector = Connector::new(self.tls.clone(), timeouts, self.stock.clone());
                SharedHttpConnector::new(connector)
            })
            .clone()
    }

    /// What the user agent names: hyper 1.x, as with the SDK's own client.
    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

#[derive(Debug)]
struct Connector {
    client: Client<Stocked, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(tls: rustls::ClientConfig, timeouts: Timeouts, stock: Arc<Stock>) -> Self {
        let opener = opener(tls, timeouts.connect);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(Stocked {
                inner: opener,
                stock,
            });
        Self {
            client,
            read_timeout: timeouts.read,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            // The whole answer, body included, is read here: every call this function
            // makes has a small, non-streaming answer, which the SDK would read into
            // memory next anyway; interceptors then see its bytes (`store::dynamodb::records`),
            // and the read timeout covers the body too.
            let answer = async {
                let (head, body) = response.await.map_err(connector_error)?.into_parts();
                let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES);
                let body = http_body_util::BodyExt::collect(body)
                    .await
                    .map_err(|err| match err.downcast::<hyper::Error>() {
                        Ok(err) => connector_error(*err),
                        // Over the limit: a broken or hostile endpoint, not a blip.
                        Err(err) => ConnectorError::other(err, None),
                    })?;
                Ok::<_, ConnectorError>(http::Response::from_parts(head, body.to_bytes()))
            };
            let answer = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, answer)
                    .await
                    .map_err(|_| ConnectorError::timeout(TimedOut("response").into()))?,
                None => answer.await,
            }?;
            HttpResponse::try_from(answer.map(SdkBody::from))
                .map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

/// What opens the client's connections: TCP, then TLS unless the endpoint is plain
/// http, within `connect_timeout`.
fn opener(tls: rustls::ClientConfig, connect_timeout: Option<Duration>) -> Opener {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        // Plain http only for the local emulators and fakes an endpoint URL names.
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    ConnectTimeout {
        inner: https,
        timeout: connect_timeout,
    }
}

/// A timeout hit by this client: what it was waiting for.
#[derive(Debug, thiserror::Error)]
#[error("timed out waiting for the {0}")]
struct TimedOut(&'static str);

/// The connector bounded by the connect timeout: TCP connect and TLS handshake both.
#[derive(Clone, Debug)]
struct ConnectTimeout<C> {
    inner: C,
    timeout: Option<Duration>,
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl<C> tower_service::Service<http::Uri> for ConnectTimeout<C>
where
    C: tower_service::Service<http::Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match timeout {
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(result) => result.map_err(Into::into),
                    Err(_) => Err(TimedOut("connection").into()),
                },
                None => connecting.await.map_err(Into::into),
            }
        })
    }
}

/// A connection as the connector makes it: TCP, then TLS unless the endpoint is plain
/// http.
type Conn = hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// What opens connections: TCP connect and TLS handshake under the connect timeout.
type Opener = ConnectTimeout<HttpsConnector<TcpConnector>>;

/// How long a connection opened ahead may wait for its request. A request sent on a
/// connection the server has meanwhile closed fails (the pool retries only on reused
/// connections), so an old one is closed rather than used. Longer than a `BatchGetItem`
/// usually takes, during which S3's connection waits.
const FRESH_FOR: Duration = Duration::from_secs(4);

/// Opens connections ahead of requests known to come: S3's `DeleteObjects` while the
/// records are read (`store::s3`).
#[derive(Clone, Debug)]
pub struct ConnectAhead(Arc<Stock>);

impl ConnectAhead {
    /// Counts a request to `uri` that waits to be sent, until the guard drops, and
    /// opens a connection for it when the host's connections (in the pool, opened
    /// ahead or opening) are fewer than its waiting requests. Nothing is sent on it:
    /// the pool takes it when the request goes.
    pub fn hold(&self, uri: &str) -> Option<Held> {
        let uri: http::Uri = uri.parse().ok()?;
        let key = host_key(&uri)?;
        let opener = self.0.opener.clone();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let mut hosts = lock(&self.0.hosts);
        let host = hosts.entry(key.clone()).or_default();
        host.held += 1;
        host.drop_stale(self.0.fresh_for);
        if let (Some(opener), Some(runtime)) = (opener, runtime)
            && host.short()
        {
            host.opening += 1;
            runtime.spawn(open_ahead(self.0.clone(), opener, uri, key.clone()));
        }
        Some(Held {
            stock: self.0.clone(),
            key,
        })
    }
}

/// A request counted as waiting by [`ConnectAhead::hold`] until dropped.
#[derive(Debug)]
pub struct Held {
    stock: Arc<Stock>,
    key: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(host) = lock(&self.stock.hosts).get_mut(&self.key) {
            host.held = host.held.saturating_sub(1);
        }
    }
}

async fn open_ahead(stock: Arc<Stock>, mut opener: Opener, uri: http::Uri, key: String) {
    use tower_service::Service;
    // First the connections that requests wait for now, such as S3's while the
    // record deletes are held: on one thread, 30 handshakes would delay its own.
    stock.none_connecting().await;
    {
        let mut hosts = lock(&stock.hosts);
        let host = hosts.entry(key.clone()).or_default();
        host.opening = host.opening.saturating_sub(1);
        // Meanwhile the held requests may have gone and connected on their own.
        if !host.short() {
            return;
        }
        host.started += 1;
    }
    // A failure is left to the request: it connects on its own, as without this,
    // and reports its own error.
    let opened = opener.call(uri).await;
    {
        let mut hosts = lock(&stock.hosts);
        let host = hosts.entry(key).or_default();
        host.started = host.started.saturating_sub(1);
        if let Ok(conn) = opened {
            host.ready.push_back((std::time::Instant::now(), conn));
        }
    }
    stock.ahead_done.notify_waiters();
}

/// The connections of one client, counted per host as the pool keys them (scheme and
/// authority).
#[derive(Debug, Default)]
struct Stock {
    /// `FRESH_FOR`, but for tests.
    fresh_for: Duration,
    hosts: Mutex<HashMap<String, Host>>,
    /// What `ConnectAhead` opens with; `None` for a client without one.
    opener: Option<Opener>,
    /// Connections being opened for requests that wait for them (not ahead).
    connecting: std::sync::atomic::AtomicUsize,
    /// Notified when `connecting` falls to 0.
    none_connecting: tokio::sync::Notify,
    /// Notified when a connection opened ahead is ready, or failed.
    ahead_done: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Host {
    /// Handed to the pool and still open, idle or busy.
    pooled: usize,
    /// To be opened ahead, once no request waits for a connection of its own.
    opening: usize,
    /// Being opened ahead now.
    started: usize,
    /// Requests waiting to be sent (`ConnectAhead::hold`).
    held: usize,
    /// Requests sent, waiting for a connection being opened ahead (`Stock::ahead_for`).
    waiting: usize,
    /// Opened ahead and not yet taken by the pool, oldest first.
    ready: std::collections::VecDeque<(std::time::Instant, Conn)>,
}

impl Host {
    /// Whether requests (held, or sent and waiting) outnumber the connections there
    /// are, opened ahead, or to be opened ahead for them.
    fn short(&self) -> bool {
        self.waiting + self.held.saturating_sub(self.pooled)
            > self.ready.len() + self.started + self.opening
    }

    fn drop_stale(&mut self, fresh_for: Duration) {
        let now = std::time::Instant::now();
        self.ready
            .retain(|(at, _)| now.duration_since(*at) < fresh_for);
    }
}

impl Stock {
    /// Returns once no request waits for a connection being opened.
    async fn none_connecting(&self) {
        loop {
            let notified = self.none_connecting.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.connecting.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// A fresh connection opened ahead for `key`, waiting for one being opened
    /// rather than opening another; `None` when none is ready or coming.
    async fn ahead_for(&self, key: &str) -> Option<Conn> {
        let mut me = Waiting {
            stock: self,
            key,
            counted: false,
        };
        loop {
            let done = self.ahead_done.notified();
            let mut done = std::pin::pin!(done);
            done.as_mut().enable();
            {
                let mut hosts = lock(&self.hosts);
                let host = hosts.get_mut(key)?;
                if me.counted {
                    host.waiting = host.waiting.saturating_sub(1);
                    me.counted = false;
                }
                host.drop_stale(self.fresh_for);
                if let Some((_, conn)) = host.ready.pop_back() {
                    return Some(conn);
                }
                if host.started <= host.waiting {
                    return None;
                }
                host.waiting += 1;
                me.counted = true;
            }
            done.await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn host_key(uri: &http::Uri) -> Option<String> {
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// The pool's connector: a connection opened ahead when one is fresh, else a new one;
/// either way counted as pooled until closed.
#[derive(Clone, Debug)]
struct Stocked {
    inner: Opener,
    stock: Arc<Stock>,
}

impl tower_service::Service<http::Uri> for Stocked {
    type Response = Counted;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Counted, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let key = host_key(&uri);
        let stock = self.stock.clone();
        let mut opener = self.inner.clone();
        Box::pin(async move {
            if let Some(key) = &key
                && let Some(conn) = stock.ahead_for(key).await
            {
                return Ok(Counted::new(stock, Some(key.clone()), conn));
            }
            let waited_for = Connecting::new(stock.clone());
            let conn = opener.call(uri).await;
            drop(waited_for);
            Ok(Counted::new(stock, key, conn?))
        })
    }
}

/// A request counted in its host's `waiting` (while `counted`): uncounted when its
/// connection's future is dropped mid-wait.
struct Waiting<'a> {
    stock: &'a Stock,
    key: &'a str,
    counted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.counted
            && let Some(host) = lock(&self.stock.hosts).get_mut(self.key)
        {
            host.waiting = host.waiting.saturating_sub(1);
        }
    }
}

/// A connection being opened for a request, counted in `Stock::connecting` until
/// dropped.
struct Connecting(Arc<Stock>);

impl Connecting {
    fn new(stock: Arc<Stock>) -> Self {
        stock
            .connecting
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self(stock)
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if self
            .0
            .connecting
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.none_connecting.notify_waiters();
        }
    }
}

/// A connection in the pool, counted in its host's `pooled` until dropped.
#[derive(Debug)]
struct Counted {
    conn: Conn,
    stock: Arc<Stock>,
    key: Option<String>,
}

impl Counted {
    fn new(stock: Arc<Stock>, key: Option<String>, conn: Conn) -> Self {
        if let Some(key) = &key {
            lock(&stock.hosts).entry(key.clone()).or_default().pooled += 1;
        }
        Self { conn, stock, key }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(key) = &self.key
            && let Some(host) = lock(&self.stock.hosts).get_mut(key)
        {
            host.pooled = host.pooled.saturating_sub(1);
        }
    }
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().conn).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().conn).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().conn).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().conn).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.conn.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().conn).poll_write_vectored(cx, bufs)
    }
}

impl hyper_util::client::legacy::connect::Connection for Counted {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.conn.connected()
    }
}

/// Classifies a failed call for the SDK's retry policy: timeouts and broken or refused
/// connections are transient (retried), a request the client could not send is the
/// caller's error (not retried), anything else is left unclassified.
fn connector_error(err: impl Into<BoxError>) -> ConnectorError {
    let err: BoxError = err.into();
    let source: &(dyn StdError + 'static) = &*err;
    if find::<TimedOut>(source).is_some() {
        return ConnectorError::timeout(err);
    }
    if let Some(hyper_err) = find::<hyper::Error>(source) {
        if hyper_err.is_timeout() {
            return ConnectorError::timeout(err);
        }
        if hyper_err.is_user() {
            return ConnectorError::user(err);
        }
        if hyper_err.is_closed() || hyper_err.is_canceled() {
            return ConnectorError::io(err);
        }
        // An answer cut short (S3 is known to do this): retry.
        if hyper_err.is_incomplete_message() {
            return ConnectorError::other(err, Some(ErrorKind::TransientError));
        }
    }
    let connect = find::<hyper_util::client::legacy::Error>(source).is_some_and(|e| e.is_connect());
    if connect || find::<std::io::Error>(source).is_some() {
        return ConnectorError::io(err);
    }
    ConnectorError::other(err, None)
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    //! The client against loopback servers: the bytes it sends are the SDK client's,
    //! connections are reused, and failures are classified for the SDK's retries.

    use super::*;
    use crate::store::test_calls;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_async::time::StaticTimeSource;
    use aws_smithy_types::retry::RetryConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    pub(crate) const ROOTS: &[u8] = include_bytes!("../tls/aws-roots.pem");
    /// The connect timeout of test clients' connections opened ahead (the function's).
    pub(crate) const TEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    /// How the loopback server treats each request.
    #[derive(Clone, Copy)]
    pub(crate) enum Serve {
        /// Answer 200 with `{}` and keep the connection.
        Answer,
        /// Close the connection without answering (the answer is lost).
        Drop,
        /// Answer 200 with this body (a `BatchGetItem` answer).
        Body(&'static str),
        /// Announce a 100-byte body, send 10 bytes of it and close.
        CutShort,
        /// Stream a chunked body that never ends.
        Endless,
    }

    /// A loopback HTTP/1.1 server: the raw bytes of every request, and how many
    /// connections were accepted.
    pub(crate) struct Server {
        port: u16,
        requests: Arc<Mutex<Vec<Vec<u8>>>>,
        connections: Arc<AtomicUsize>,
    }

    impl Server {
        pub(crate) async fn start(serve: Serve) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let connections = Arc::new(AtomicUsize::new(0));
            let (seen, count) = (requests.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    count.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(Self::connection(stream, serve, seen.clone()));
                }
            });
            Self {
                port,
                requests,
                connections,
            }
        }

        async fn connection(mut stream: TcpStream, serve: Serve, seen: Arc<Mutex<Vec<Vec<u8>>>>) {
            while let Some(request) = read_request(&mut stream).await {
                seen.lock().unwrap().push(request);
                let body = match serve {
                    Serve::Drop => return,
                    Serve::CutShort => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"Table\":{";
                        let _ = stream.write_all(head.as_bytes()).await;
                        return;
                    }
                    Serve::Endless => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ntransfer-encoding: chunked\r\n\r\n";
                        let _ = stream.write_all(head.as_bytes()).await;
                        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                        return;
                    }
                    Serve::Answer => "{}",
                    Serve::Body(body) => body,
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }

        pub(crate) fn url(&self) -> String {
            format!("http://127.0.0.1:{}", self.port)
        }

        pub(crate) fn requests(&self) -> Vec<Vec<u8>> {
            self.requests.lock().unwrap().clone()
        }

        pub(crate) fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }

        /// Waits (up to 2 s) until `n` connections were accepted.
        pub(crate) async fn accepted(&self, n: usize) -> usize {
            for _ in 0..200 {
                if self.connections() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.connections()
        }
    }

    /// One request's bytes: the head, then as many body bytes as it announces.
    async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            bytes.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while bytes.len() < head_end + length {
            let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            bytes.extend_from_slice(&chunk[..n]);
        }
        Some(bytes)
    }

    pub(crate) fn dynamodb(
        http: SharedHttpClient,
        url: &str,
        retry: RetryConfig,
    ) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .time_source(StaticTimeSource::from_secs(1_790_000_000))
            .endpoint_url(url)
            .http_client(http)
            .retry_config(retry)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    pub(crate) fn s3(http: SharedHttpClient, url: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .time_source(StaticTimeSource::from_secs(1_790_000_000))
            .endpoint_url(url)
            .force_path_style(true)
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The function's three calls through `http`, as the server received them, with
    /// the per-call random id masked.
    pub(crate) async fn calls_through(http: SharedHttpClient, server: &Server) -> Vec<String> {
        let before = server.requests().len();
        let ddb = dynamodb(http.clone(), &server.url(), RetryConfig::disabled());
        let _ = ddb
            .batch_get_item()
            .request_items("images", test_calls::reads())
            .send()
            .await;
        let _ = ddb
            .batch_write_item()
            .request_items("images", test_calls::writes())
            .send()
            .await;
        let delete = test_calls::object_deletes(|i| format!("albums/a/{i}.jpg"));
        let _ = s3(http, &server.url())
            .delete_objects()
            .bucket("images")
            .delete(delete)
            .send()
            .await;
        server.requests()[before..]
            .iter()
            .map(|bytes| masked(bytes))
            .collect()
    }

    /// A request as received, with the per-call random id masked.
    pub(crate) fn masked(bytes: &[u8]) -> String {
        std::str::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| match line.split_once(':') {
                Some((name, _)) if name.eq_ignore_ascii_case("amz-sdk-invocation-id") => {
                    format!("{name}: random")
                }
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn the_functions_calls_go_on_the_wire_byte_for_byte_as_through_the_sdks_client() {
        // GIVEN the SDK's own HTTP client and ours
        let theirs = aws_smithy_http_client::Builder::new().build_http();
        let ours = client(&[ROOTS]).unwrap();
        // WHEN the function's BatchGetItem, BatchWriteItem and DeleteObjects go through
        // each to a loopback server
        let server = Server::start(Serve::Answer).await;
        let expected = calls_through(theirs, &server).await;
        let sent = calls_through(ours, &server).await;
        // THEN the server receives the same bytes: request line, headers (the user
        // agent included), signature and body
        assert_eq!(expected.len(), 3);
        assert_eq!(sent.len(), 3);
        for (ours, theirs) in sent.iter().zip(&expected) {
            let differing: Vec<_> = ours
                .lines()
                .zip(theirs.lines())
                .filter(|(a, b)| a != b)
                .collect();
            assert!(differing.is_empty(), "{differing:#?}");
            assert_eq!(ours, theirs);
        }
    }

    #[tokio::test]
    async fn answers_arrive_whole_so_records_are_read_without_the_sdks_parser() {
        use crate::ports::Catalog;
        use crate::store::dynamodb::DynamoCatalog;
        use crate::store::dynamodb::records::RecordReader;
        // GIVEN a DynamoDB that answers every read with two records, the second
        // without an album
        const A: &str = "0c5f3e4e-0000-4000-8000-00000000000a";
        const B: &str = "0c5f3e4e-0000-4000-8000-00000000000b";
        const ANSWER: &str = r#"{"Responses":{"images":[{"id":{"S":"0c5f3e4e-0000-4000-8000-00000000000a"},"album_id":{"S":"album"},"object_keys":{"SS":["albums/album/a.jpg"]}},{"id":{"S":"0c5f3e4e-0000-4000-8000-00000000000b"}}]},"UnprocessedKeys":{}}"#;
        let server = Server::start(Serve::Body(ANSWER)).await;
        let ids = [A, B].map(|id| crate::domain::ImageId::parse(id).unwrap());
        for (http, whole) in [
            (client(&[ROOTS]).unwrap(), true),
            (aws_smithy_http_client::Builder::new().build_http(), false),
        ] {
            let ddb = dynamodb(http, &server.url(), RetryConfig::disabled());
            // WHEN a read goes through this client with the record reader
            let reader = RecordReader::new("images".into());
            let output = ddb
                .batch_get_item()
                .request_items("images", test_calls::reads())
                .customize()
                .interceptor(reader.clone())
                .send()
                .await
                .unwrap();
            // THEN through ours, whose answers arrive whole, the reader read the records
            // and the SDK only the rest; the SDK's client streams, so there the SDK
            // read them all
            assert_eq!(reader.take().map(|r| r.len()), whole.then_some(2));
            assert_eq!(output.responses().is_some(), !whole);
            // AND either way the catalog finds A and leaves B unread
            let lookup = DynamoCatalog::new(ddb, "images", 4)
                .get(&ids, crate::retry::Deadline::after(Duration::from_secs(5)))
                .await;
            let found: Vec<_> = lookup.found.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(found, [A]);
            assert_eq!(lookup.unread, ids[1..]);
        }
    }

    #[tokio::test]
    async fn calls_reuse_one_connection() {
        // GIVEN a server that answers and keeps connections open
        let server = Server::start(Serve::Answer).await;
        let ddb = dynamodb(
            client(&[ROOTS]).unwrap(),
            &server.url(),
            RetryConfig::disabled(),
        );
        // WHEN three calls are made one after the other
        for _ in 0..3 {
            ddb.list_tables().send().await.unwrap();
        }
        // THEN they share one connection
        assert_eq!(server.requests().len(), 3);
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    /// One call against a server that treats every request as `serve`, with three
    /// attempts: asserts that the failure was transient and retried to the limit.
    async fn retried_to_the_limit(serve: Serve) -> Server {
        let server = Server::start(serve).await;
        let retry = RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1));
        let ddb = dynamodb(client(&[ROOTS]).unwrap(), &server.url(), retry);
        let err = ddb.list_tables().send().await.unwrap_err();
        assert!(
            matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(ref f) if f.is_io() || f.as_other() == Some(ErrorKind::TransientError)),
            "{err:?}"
        );
        assert_eq!(server.requests().len(), 3);
        server
    }

    #[tokio::test]
    async fn a_lost_answer_is_retried_on_a_new_connection() {
        // GIVEN a server that closes every connection without answering
        // WHEN a call is made THEN the SDK saw a transient failure and retried it to
        // the limit, each attempt on a fresh connection
        let server = retried_to_the_limit(Serve::Drop).await;
        assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_cut_short_in_its_body_is_retried() {
        // GIVEN a server whose answers stop partway through the body
        // WHEN a call is made THEN the client read the body and failed it as
        // transient: retried to the limit
        retried_to_the_limit(Serve::CutShort).await;
    }

    #[tokio::test]
    async fn an_endless_answer_fails_the_call_at_the_limit_without_a_retry() {
        // GIVEN a server whose answer's body never ends
        let server = Server::start(Serve::Endless).await;
        let retry = RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1));
        let ddb = dynamodb(client(&[ROOTS]).unwrap(), &server.url(), retry);
        // WHEN a call is made (no timeout of its own: only the limit can end it)
        let call = tokio::time::timeout(Duration::from_secs(10), ddb.list_tables().send());
        let err = call.await.expect("the limit ends the call").unwrap_err();
        // THEN it failed once, as no transient error: the endpoint is broken
        let aws_sdk_dynamodb::error::SdkError::DispatchFailure(failure) = &err else {
            panic!("{err:?}");
        };
        assert!(!failure.is_io() && !failure.is_timeout(), "{err:?}");
        assert_eq!(server.requests().len(), 1);
    }

    /// A DynamoDB client through `http`, with this connect timeout, to an https
    /// endpoint that accepts connections and never answers.
    async fn stalled_endpoint(
        http: SharedHttpClient,
        connect_timeout: Duration,
    ) -> aws_sdk_dynamodb::Client {
        stalled_endpoint_counted(http, connect_timeout).await.0
    }

    /// [`stalled_endpoint`], its URL, and how many connections it has accepted.
    async fn stalled_endpoint_counted(
        http: SharedHttpClient,
        connect_timeout: Duration,
    ) -> (aws_sdk_dynamodb::Client, String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        let url = format!("https://127.0.0.1:{port}");
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .endpoint_url(&url)
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .connect_timeout(connect_timeout)
                    .build(),
            )
            .build();
        (aws_sdk_dynamodb::Client::from_conf(config), url, accepted)
    }

    #[tokio::test]
    async fn a_handshake_that_never_ends_is_a_connect_timeout() {
        // GIVEN an https endpoint that accepts connections and never answers
        let stalled = stalled_endpoint(client(&[ROOTS]).unwrap(), Duration::from_millis(200));
        // WHEN a call is made
        let err = stalled.await.list_tables().send().await.unwrap_err();
        // THEN it fails as a timeout (retryable), the TLS handshake bounded by the
        // connect timeout
        assert!(
            matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(ref f) if f.is_timeout()),
            "{err:?}"
        );
    }

    /// `n` `ListTables` calls at once through `http`.
    async fn calls_at_once(http: SharedHttpClient, server: &Server, n: usize) {
        let ddb = dynamodb(http, &server.url(), RetryConfig::disabled());
        let calls = (0..n).map(|_| ddb.list_tables().send());
        for answer in futures_util::future::join_all(calls).await {
            answer.unwrap();
        }
    }

    #[tokio::test]
    async fn calls_to_a_host_named_not_numbered_are_answered() {
        // GIVEN our client and a server reached by its name, not by its address
        let server = Server::start(Serve::Answer).await;
        let url = server.url().replace("127.0.0.1", "localhost");
        let ddb = dynamodb(client(&[ROOTS]).unwrap(), &url, RetryConfig::disabled());
        // WHEN five calls go at once, each on a new connection
        let calls = (0..5).map(|_| ddb.list_tables().send());
        // THEN all five are answered
        for answer in futures_util::future::join_all(calls).await {
            answer.unwrap();
        }
        assert_eq!(server.requests().len(), 5);
    }

    #[tokio::test]
    async fn held_requests_find_their_connections_opened_ahead() {
        // GIVEN our client with one connection in its pool, and a server
        let server = Server::start(Serve::Answer).await;
        let (http, ahead) = client_with_ahead(&[ROOTS], TEST_CONNECT_TIMEOUT).unwrap();
        calls_at_once(http.clone(), &server, 1).await;
        // WHEN three requests to it are announced as held
        let held: Vec<_> = (0..3).map(|_| ahead.hold(&server.url()).unwrap()).collect();
        // THEN the two missing connections are opened, and nothing is sent on them
        assert_eq!(server.accepted(3).await, 3);
        assert_eq!(server.requests().len(), 1);
        // WHEN the three go at once
        drop(held);
        calls_at_once(http.clone(), &server, 3).await;
        // THEN they are sent on those connections: none is opened after
        assert_eq!(server.requests().len(), 4);
        assert_eq!(server.connections(), 3);
        // AND once the pool holds as many as are held, holding opens nothing
        let held: Vec<_> = (0..3).map(|_| ahead.hold(&server.url()).unwrap()).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.connections(), 3);
        drop(held);
    }

    #[tokio::test]
    async fn a_connection_opened_ahead_and_left_unused_too_long_is_not_used() {
        // GIVEN our client, whose connections opened ahead stay fresh for 50 ms
        let server = Server::start(Serve::Answer).await;
        let (http, ahead) = build(
            &[ROOTS],
            Duration::from_millis(50),
            Some(TEST_CONNECT_TIMEOUT),
        )
        .unwrap();
        calls_at_once(http.clone(), &server, 1).await;
        // WHEN a second connection is opened ahead and its request goes only later
        let held = [ahead.hold(&server.url()), ahead.hold(&server.url())];
        assert_eq!(server.accepted(2).await, 2);
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        calls_at_once(http, &server, 2).await;
        // THEN the stale one is not used: the second call opens a connection of its own
        assert_eq!(server.requests().len(), 3);
        assert_eq!(server.connections(), 3);
    }

    #[tokio::test]
    async fn connections_are_opened_ahead_only_once_no_request_waits_for_one() {
        // GIVEN our client, a call connecting to an endpoint whose TLS handshake stalls
        // for 300 ms (as DynamoDB's might while S3's connection is held), and a server
        let server = Server::start(Serve::Answer).await;
        let (http, ahead) = client_with_ahead(&[ROOTS], TEST_CONNECT_TIMEOUT).unwrap();
        let stalled = stalled_endpoint(http, Duration::from_millis(300)).await;
        let stalled = tokio::spawn(async move { stalled.list_tables().send().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // WHEN two requests to the server are held meanwhile
        let held = [ahead.hold(&server.url()), ahead.hold(&server.url())];
        // THEN nothing is opened for them while that call connects
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(server.connections(), 0);
        // AND once it has given up, both are
        assert!(stalled.await.unwrap().is_err());
        assert_eq!(server.accepted(2).await, 2);
        drop(held);
    }

    #[tokio::test]
    async fn a_request_waits_for_the_connection_being_opened_ahead_for_it() {
        // GIVEN our client opening a connection ahead to an endpoint whose TLS
        // handshakes take 300 ms (and then fail)
        let (http, ahead) = client_with_ahead(&[ROOTS], TEST_CONNECT_TIMEOUT).unwrap();
        let (ddb, url, accepted) =
            stalled_endpoint_counted(http.clone(), Duration::from_millis(300)).await;
        // A first call, failed like every handshake there (its connection counted).
        let first = tokio::spawn({
            let ddb = ddb.clone();
            async move { ddb.list_tables().send().await }
        });
        assert!(first.await.unwrap().is_err());
        let held = ahead.hold(&url);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // WHEN the held request goes while that connection is still being opened
        drop(held);
        let call = tokio::spawn(async move { ddb.list_tables().send().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // THEN it waits for it rather than opening another
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // AND when that one fails, it opens its own
        assert!(call.await.unwrap().is_err());
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        assert!(client(&[b"not a certificate"]).is_err());
        assert!(client(&[]).is_err());
    }
}
