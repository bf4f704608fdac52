//! Record deletes made ready while S3 still works, and sent only once it is done.
//!
//! A 1000-id request makes 40 `BatchWriteItem` calls, and building and signing them
//! costs the SDK milliseconds of CPU. They may only be sent once S3 has confirmed every
//! object gone (objects before records), but they can be built while S3 works: they
//! go through this HTTP client, which holds each request, built and signed, until the
//! deletion core gives its `Go`, then hands it on unchanged. A call dropped before
//! that has sent nothing.
//!
//! Fail-safe by construction: the client lets a request through only when the `Go`
//! scoped around the call (`with_go`) is given; a call without one is refused unsent.
//!
//! While a request waits, its connection can be opened (`https::ConnectAhead`): on
//! the first large request, 30 new connections (TLS handshakes, on AWS) then open
//! during S3's wait instead of after it. No byte of the request is sent on them.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use crate::aws::https::ConnectAhead;
use crate::aws::turns::Turns;
use crate::ports::Go;

tokio::task_local! {
    static GO: Go;
}

/// Longest a request waits at the gate; then the go expires for every request held
/// under it, so that they all go or none does. Under the SDK's attempt timeout
/// (`startup::ATTEMPT_TIMEOUT`, 5 s), so that a long wait ends the call unsent (an
/// error the SDK does not retry) rather than as a timeout it would retry and charge
/// to its retry quota, and so that a request let through keeps half the attempt's
/// time to be answered.
pub const PATIENCE: Duration = Duration::from_millis(2500);

/// Runs `calls` (through a `GatedHttpClient`) under `go`.
pub async fn with_go<F: Future>(go: Go, calls: F) -> F::Output {
    GO.scope(go, calls).await
}

/// Why a gated request was not sent.
#[derive(Debug, thiserror::Error)]
#[error("not sent: {0}")]
struct NotSent(&'static str);

/// Where a gated client finds the `ConnectAhead` of its inner client: settable after
/// the gated client is built, so that it is built once.
pub type AheadSlot = Arc<OnceLock<ConnectAhead>>;

/// An HTTP client that sends a request only once the `Go` around its call is given.
#[derive(Debug, Clone)]
pub struct GatedHttpClient {
    inner: SharedHttpClient,
    patience: Duration,
    ahead: AheadSlot,
    /// Requests let through together go out one turn apart (`turns`). Shared by
    /// every call through this client: on Managed Instances a call may wait a turn
    /// behind another invocation's.
    turns: Turns,
}

impl GatedHttpClient {
    pub fn new(inner: SharedHttpClient) -> Self {
        Self::with_patience(inner, PATIENCE)
    }

    pub fn with_patience(inner: SharedHttpClient, patience: Duration) -> Self {
        Self {
            inner,
            patience,
            ahead: AheadSlot::default(),
            turns: Turns::default(),
        }
    }

    /// Opens the connections of held requests while they wait, through the
    /// `ConnectAhead` in `ahead` once it holds one: that of `inner`
    /// (`https::client_with_ahead`).
    pub fn with_connect_ahead(mut self, ahead: AheadSlot) -> Self {
        self.ahead = ahead;
        self
    }
}

impl HttpClient for GatedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Gated {
            inner: self.inner.http_connector(settings, components),
            patience: self.patience,
            ahead: self.ahead.clone(),
            turns: self.turns.clone(),
        })
    }

    /// The inner client's: the user agent, and so the bytes sent, stay the same.
    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct Gated {
    inner: SharedHttpConnector,
    patience: Duration,
    ahead: AheadSlot,
    turns: Turns,
}

impl HttpConnector for Gated {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let Ok(go) = GO.try_with(Go::clone) else {
            return HttpConnectorFuture::ready(Err(ConnectorError::user(
                NotSent("a gated call without its go").into(),
            )));
        };
        let inner = self.inner.clone();
        let patience = self.patience;
        let turns = self.turns.clone();
        // Only a request that will wait (not a retry after the go) is worth a
        // connection opened ahead.
        let held = match self.ahead.get() {
            Some(ahead) if go.pending() => ahead.hold(request.uri()),
            _ => None,
        };
        HttpConnectorFuture::new(async move {
            let given = match tokio::time::timeout(patience, go.given()).await {
                Ok(given) => given,
                // Expired for every call of this go, unless it was given just now.
                Err(_) => !go.expire(),
            };
            drop(held);
            if given {
                turns.take(inner.call(request)).await
            } else {
                Err(ConnectorError::user(NotSent("no go").into()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! The gate in front of a loopback server: nothing reaches it before the go; what
    //! does is byte for byte what the ungated client sends; a call without a go, or
    //! whose go never comes or comes too late, sends nothing and is not retried.

    use super::*;
    use crate::aws::https;
    use crate::aws::https::tests::{
        ROOTS, Serve, Server, TEST_CONNECT_TIMEOUT, calls_through, dynamodb,
    };
    use crate::domain::ImageId;
    use crate::ports::{Catalog, GoSignal, go_signal};
    use crate::retry::Deadline;
    use crate::store::dynamodb::DynamoCatalog;
    use crate::store::test_calls;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_smithy_types::retry::RetryConfig;

    fn gated(patience: Duration) -> SharedHttpClient {
        let ours = https::client(&[ROOTS]).unwrap();
        SharedHttpClient::new(GatedHttpClient::with_patience(ours, patience))
    }

    /// A `BatchWriteItem` through `client`, as the catalog sends it.
    async fn write(client: aws_sdk_dynamodb::Client) -> Result<(), String> {
        let sent = client
            .batch_write_item()
            .request_items("images", test_calls::writes())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(SdkError::DispatchFailure(e)) if e.is_user() => Err("unsent".into()),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    fn ids(n: usize) -> Vec<ImageId> {
        (0..n)
            .map(|i| ImageId::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap())
            .collect()
    }

    /// A write through the gated client (with this patience), started under a go not
    /// yet given; the loopback server it would reach, and the go's signal.
    async fn held_write(
        patience: Duration,
    ) -> (
        Server,
        GoSignal,
        tokio::task::JoinHandle<Result<(), String>>,
    ) {
        let server = Server::start(Serve::Answer).await;
        let client = dynamodb(gated(patience), &server.url(), RetryConfig::standard());
        let (signal, go) = go_signal();
        let call = tokio::spawn(with_go(go, write(client)));
        (server, signal, call)
    }

    /// The DynamoDB catalog over our client, `concurrency` calls at once, and the
    /// loopback server it talks to.
    async fn catalog(concurrency: usize) -> (Server, DynamoCatalog) {
        let server = Server::start(Serve::Answer).await;
        let http = https::client(&[ROOTS]).unwrap();
        let client = dynamodb(http, &server.url(), RetryConfig::standard());
        (server, DynamoCatalog::new(client, "images", concurrency))
    }

    /// Long enough for a call to be built, signed and sent were it not held.
    async fn a_while() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    #[tokio::test]
    async fn a_request_is_held_until_go_is_given_then_sent_once() {
        // GIVEN a write through the gated client under a go not yet given
        let (server, signal, call) = held_write(PATIENCE).await;
        // WHEN it has had time to go out
        a_while().await;
        // THEN nothing reached the server, and the call still waits
        assert_eq!(server.requests().len(), 0);
        assert!(!call.is_finished());
        // WHEN go is given THEN the request is sent, once, and answered
        signal.give();
        assert_eq!(call.await.unwrap(), Ok(()));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_go_never_given_sends_nothing() {
        // GIVEN a held write
        let (server, signal, call) = held_write(PATIENCE).await;
        a_while().await;
        // WHEN its signal is dropped without giving go
        drop(signal);
        // THEN the call ends unsent, without retries, and nothing reached the server
        assert_eq!(call.await.unwrap(), Err("unsent".into()));
        a_while().await;
        assert_eq!(server.requests().len(), 0);
    }

    #[tokio::test]
    async fn a_go_that_comes_too_late_sends_nothing() {
        // GIVEN a held write whose go comes after the gate's patience
        let (server, signal, call) = held_write(Duration::from_millis(50)).await;
        // WHEN the patience runs out THEN the call ends unsent (not retried)
        let ended = tokio::time::timeout(Duration::from_secs(2), call).await;
        assert_eq!(ended.unwrap().unwrap(), Err("unsent".into()));
        // AND the go can no longer be given, and nothing was sent
        assert!(!signal.give());
        a_while().await;
        assert_eq!(server.requests().len(), 0);
    }

    #[tokio::test]
    async fn once_one_held_call_gives_up_no_call_of_its_go_is_sent() {
        // GIVEN the catalog, one call at a time, deleting 50 ids (two calls) under a
        // go that comes after the gate's patience
        let (server, catalog) = catalog(1).await;
        let catalog = catalog.with_gate_patience(Duration::from_millis(50));
        let ids = ids(50);
        let (signal, go) = go_signal();
        // WHEN the first call gives up, and the second is made after that
        let result = tokio::time::timeout(
            Duration::from_secs(2),
            catalog.delete_when(&ids, go, Deadline::after(Duration::from_secs(10))),
        )
        .await
        .expect("the held calls end on their own");
        // THEN neither was sent, both are failed, and the go can no longer be given
        assert_eq!(result.failed.len(), 50);
        assert!(!signal.give());
        assert_eq!(server.requests().len(), 0);
    }

    #[tokio::test]
    async fn a_call_without_a_go_is_refused_unsent() {
        // GIVEN a gated client
        let server = Server::start(Serve::Answer).await;
        let client = dynamodb(gated(PATIENCE), &server.url(), RetryConfig::standard());
        // WHEN a write goes through it with no go around it
        let sent = write(client).await;
        // THEN it is refused and nothing reaches the server
        assert_eq!(sent, Err("unsent".into()));
        assert_eq!(server.requests().len(), 0);
    }

    #[tokio::test]
    async fn gated_calls_go_on_the_wire_byte_for_byte_as_ungated_ones() {
        // GIVEN our client, and the same behind the gate with go given
        let server = Server::start(Serve::Answer).await;
        let expected = calls_through(https::client(&[ROOTS]).unwrap(), &server).await;
        let (signal, go) = go_signal();
        signal.give();
        // WHEN the function's three calls go through each
        let sent = with_go(go, calls_through(gated(PATIENCE), &server)).await;
        // THEN the server receives the same bytes
        assert_eq!(expected.len(), 3);
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn the_catalogs_held_deletes_find_their_connections_opened_while_they_wait() {
        // GIVEN the DynamoDB catalog over our client, opening connections ahead, and
        // 30 ids (two BatchWriteItem calls)
        let server = Server::start(Serve::Answer).await;
        let (http, ahead) = https::client_with_ahead(&[ROOTS], TEST_CONNECT_TIMEOUT).unwrap();
        let client = dynamodb(http, &server.url(), RetryConfig::standard());
        let catalog = DynamoCatalog::new(client, "images", 40).with_connect_ahead(Some(ahead));
        let ids = ids(30);
        // WHEN its deletes are made ready under a go not yet given
        let (signal, go) = go_signal();
        let deadline = Deadline::after(Duration::from_secs(10));
        let mut ready = Box::pin(catalog.delete_when(&ids, go, deadline));
        let held = tokio::time::timeout(Duration::from_millis(200), ready.as_mut()).await;
        // THEN their two connections are open, and nothing was sent on them
        assert!(held.is_err(), "the deletes ended before go");
        assert_eq!(server.connections(), 2);
        assert_eq!(server.requests().len(), 0);
        // WHEN go is given THEN both calls go out on those connections
        signal.give();
        let result = ready.await;
        assert!(result.failed.is_empty(), "{:?}", result.error);
        assert_eq!(server.requests().len(), 2);
        assert_eq!(server.connections(), 2);
    }

    #[tokio::test]
    async fn the_catalogs_record_deletes_are_held_until_go() {
        // GIVEN the DynamoDB catalog and 30 ids (two BatchWriteItem calls)
        let (server, catalog) = catalog(40).await;
        let ids = ids(30);
        let deadline = Deadline::after(Duration::from_secs(10));
        // WHEN its deletes are made ready under a go not yet given
        let (signal, go) = go_signal();
        let mut ready = Box::pin(catalog.delete_when(&ids, go, deadline));
        let held = tokio::time::timeout(Duration::from_millis(200), ready.as_mut()).await;
        // THEN nothing was sent
        assert!(held.is_err(), "the deletes ended before go");
        assert_eq!(server.requests().len(), 0);
        // WHEN go is given THEN both calls are sent and every record is deleted
        signal.give();
        let result = ready.await;
        assert!(result.failed.is_empty(), "{:?}", result.error);
        let bodies: Vec<String> = server
            .requests()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(bodies.len(), 2);
        assert!(bodies.iter().all(|b| b.contains("BatchWriteItem")));
    }
}
