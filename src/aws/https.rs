//! The HTTP client of every AWS call: HTTP/1.1 over rustls with ring, pooled by
//! hyper, trusting only the root CAs it is given.
//!
//! Ours rather than the SDK's default client because that one always links an HTTP/2
//! stack (h2), which DynamoDB, S3, SQS and Secrets Manager never need from a function
//! that sends a few small requests per call: leaving it out takes 7.7 % off the zip
//! (`make pieces`; on speed the two clients are within noise, except a first or warm
//! 9-id request at 256 MB, where the SDK's was faster in that run: see
//! bench/results/pieces.md). What the SDK's client does that matters here is kept:
//! a connect timeout that covers the TLS handshake, connections reused across calls
//! and clients, TLS session resumption, and errors classified so that the SDK retries
//! exactly the transient ones (`connector_error`).

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

use hyper_util::rt::{TokioExecutor, TokioTimer};
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
    Ok(SharedHttpClient::new(Https {
        tls,
        connectors: Mutex::default(),
    }))
}

/// One connector per distinct timeout setting (in practice one): the SDK asks for a
/// connector per operation, and every client of the process shares the pool.
#[derive(Debug)]
struct Https {
    tls: rustls::ClientConfig,
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
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
                let connector = Connector::new(self.tls.clone(), timeouts);
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
    client: Client<Opener, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(tls: rustls::ClientConfig, timeouts: Timeouts) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(opener(tls, timeouts.connect));
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
            // memory next anyway; the size limit and the read timeout then cover the
            // body too.
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

/// What opens connections: TCP connect and TLS handshake under the connect timeout.
type Opener = ConnectTimeout<HttpsConnector<TcpConnector>>;

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
    async fn records_read_through_this_client_are_found_and_bad_ones_left_unread() {
        use crate::ports::Catalog;
        use crate::store::dynamodb::DynamoCatalog;
        // GIVEN a DynamoDB that answers every read with two records, the second
        // without an album
        const A: &str = "0c5f3e4e-0000-4000-8000-00000000000a";
        const B: &str = "0c5f3e4e-0000-4000-8000-00000000000b";
        const ANSWER: &str = r#"{"Responses":{"images":[{"id":{"S":"0c5f3e4e-0000-4000-8000-00000000000a"},"album_id":{"S":"album"},"object_keys":{"SS":["albums/album/a.jpg"]}},{"id":{"S":"0c5f3e4e-0000-4000-8000-00000000000b"}}]},"UnprocessedKeys":{}}"#;
        let server = Server::start(Serve::Body(ANSWER)).await;
        let ids = [A, B].map(|id| crate::domain::ImageId::parse(id).unwrap());
        let ddb = dynamodb(
            client(&[ROOTS]).unwrap(),
            &server.url(),
            RetryConfig::disabled(),
        );
        // WHEN the catalog reads both through our client
        let lookup = DynamoCatalog::new(ddb, "images", 4)
            .get(&ids, crate::retry::Deadline::after(Duration::from_secs(5)))
            .await;
        // THEN it finds A and leaves B unread
        let found: Vec<_> = lookup.found.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(found, [A]);
        assert_eq!(lookup.unread, ids[1..]);
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
        assert_eq!(server.connections(), 1);
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
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
        aws_sdk_dynamodb::Client::from_conf(config)
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

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        assert!(client(&[b"not a certificate"]).is_err());
        assert!(client(&[]).is_err());
    }
}
