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
//!
//! With CA_PEM_OUT it also serves HTTPS, as AWS endpoints do: it makes a throwaway
//! CA (root and intermediate, as AWS chains are; ECDSA P-256, the only key type ring
//! can generate), writes the root to CA_PEM_OUT for the client to trust
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
    connections: u64,
    waves: u64,
    inflight: u64,
    peak_inflight: u64,
}

struct State {
    delay: Duration,
    album: String,
    stats: Mutex<Stats>,
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
        if target.ends_with(".BatchGetItem") {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let mut responses = serde_json::Map::new();
            for (table, spec) in request["RequestItems"].as_object().into_iter().flatten() {
                let items: Vec<Value> = spec["Keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|key| {
                        let id = key["id"]["S"].as_str().unwrap_or_default();
                        json!({
                            "id": {"S": id},
                            "album_id": {"S": self.album},
                            "object_keys": {"SS": [format!("albums/{}/{id}/original.jpg", self.album)]},
                        })
                    })
                    .collect();
                responses.insert(table.clone(), Value::Array(items));
            }
            let answer = json!({"Responses": responses, "UnprocessedKeys": {}});
            ("BatchGetItem", reply(200, JSON, answer.to_string()))
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

    fn stats_json(&self) -> String {
        let s = self.stats.lock().unwrap();
        json!({
            "requests": s.requests,
            "by_operation": s.by_operation,
            "connections": s.connections,
            "waves": s.waves,
            "peak_inflight": s.peak_inflight,
            "tls_full": s.tls_full,
            "tls_resumed": s.tls_resumed,
        })
        .to_string()
    }
}

async fn handle(
    state: Arc<State>,
    counted: Arc<AtomicBool>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
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
    tokio::time::sleep(state.delay).await;
    let (operation, response) = state.answer(&target, &query, &body);
    let mut s = state.stats.lock().unwrap();
    s.inflight -= 1;
    *s.by_operation.entry(operation).or_default() += 1;
    Ok(response)
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

/// A root CA, an intermediate signed by it, and a server certificate signed by the
/// intermediate; the root written to `ca_out`. The server's rustls config.
fn tls_config(ca_out: &str) -> Arc<rustls::ServerConfig> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), mid.der().clone()], key)
        .expect("a server certificate");
    Arc::new(config)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let delay_ms: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20.0);
    let album = args.next().unwrap_or_else(|| "00100000123BB121".to_owned());
    let ca_out = args.next();
    let state = Arc::new(State {
        delay: Duration::from_secs_f64(delay_ms / 1000.0),
        album,
        stats: Mutex::new(Stats::default()),
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
