//! Building the function once per execution environment: configuration, one shared
//! AWS config, the clients, the keys and the endpoint.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use secrecy::ExposeSecret;

use crate::auth::{SigningKey, Tokens, keys_from_secret_text};
use crate::aws::https;
use crate::config::{self, Config, ConfigError, DEV_SECRET, KeySource};
use crate::domain::Deleter;
use crate::http::Api;
use crate::retry::Deadline;
use crate::store::dynamodb::DynamoCatalog;
use crate::store::dynamodb::trash::DynamoTrash;
use crate::store::eventbridge::BridgeAuditLog;
use crate::store::s3::S3ObjectStore;
use crate::store::sqs::SqsHandOff;
use crate::triggers::Cleanup;
use crate::triggers::audit::Audit;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Connecting to an AWS endpoint in-region takes milliseconds; a second is generous.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// One attempt of one call; a 1000-key `DeleteObjects` is the slowest we make.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call including the SDK's own retries.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::auth::KeyError),
    #[error("reading the signing keys from Secrets Manager failed")]
    Secret(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("AWS_CA_BUNDLE: {0}")]
    CaBundle(String),
    #[error("the AWS calls' HTTPS client")]
    HttpClient(#[from] https::ClientError),
}

/// Root CAs of AWS endpoints, bundled: loading the system store instead parses every
/// certificate on the machine at each cold start (86% of init instructions, measured
/// with callgrind).
const AWS_ROOT_CAS: &[u8] = include_bytes!("tls/aws-roots.pem");

/// Certificates to trust beside the bundled AWS roots, from the PEM file named by
/// `AWS_CA_BUNDLE` (the variable the other AWS SDKs read): for a TLS-inspecting proxy,
/// or a local stand-in with its own CA, as `make bench` uses. Added to, never
/// replacing, the AWS roots. A file that cannot be read or holds no certificate stops
/// the start with a clear error.
pub fn extra_root_cas() -> Result<Option<Vec<u8>>, InitError> {
    ca_bundle(std::env::var_os("AWS_CA_BUNDLE"))
}

fn ca_bundle(path: Option<std::ffi::OsString>) -> Result<Option<Vec<u8>>, InitError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let pem =
        std::fs::read(&path).map_err(|e| InitError::CaBundle(format!("cannot read it: {e}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| InitError::CaBundle("not a PEM file of certificates".into()))?;
    if certificates.is_empty() {
        return Err(InitError::CaBundle("holds no certificate".into()));
    }
    Ok(Some(pem))
}

/// The HTTPS client of every AWS call (`aws::https`): HTTP/1.1 over rustls with ring
/// (one small crypto provider for TLS; the binary carries no aws-lc and no HTTP/2),
/// trusting the bundled AWS root CAs and any `extra` ones (`extra_root_cas`).
pub fn https_client(extra: Option<Vec<u8>>) -> Result<SharedHttpClient, InitError> {
    let mut bundles: Vec<&[u8]> = vec![AWS_ROOT_CAS];
    bundles.extend(extra.as_deref());
    Ok(https::client(&bundles)?)
}

/// The shared AWS config: endpoints from the standard environment, explicit timeouts,
/// the HTTPS client above, and, when the environment holds them (as on Lambda), region
/// and credentials read straight from it rather than through the provider chains
/// (which build an STS client and read profile files).
pub async fn aws_config() -> Result<SdkConfig, InitError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let http = https_client(extra_root_cas()?)?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        // The attempt timeout above already ends a stalled call; the SDK's throughput
        // monitor around every body cost 2 % of a warm request's instructions.
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        );
    if let Ok(region) = std::env::var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    Ok(loader.load().await)
}

/// The deletion core over DynamoDB and S3, with the trash when `TRASH_DAYS` sets one.
pub fn deleter(config: &Config, aws: &SdkConfig) -> Deleter {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let s3_config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(config.s3_path_style)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(s3_config);
    let catalog = DynamoCatalog::new(dynamodb.clone(), &config.table, config.concurrency)
        .with_album_index(&config.album_index);
    let objects = Arc::new(S3ObjectStore::new(s3, &config.bucket, config.concurrency));
    let Some(trash) = &config.trash else {
        return Deleter::new(Arc::new(catalog), objects);
    };
    let bin = DynamoTrash::new(dynamodb, &config.table, &trash.table, config.concurrency)
        .with_index(&trash.index);
    Deleter::new(Arc::new(catalog.with_whole_records()), objects.clone()).with_trash(
        Arc::new(bin),
        objects,
        trash.days,
    )
}

/// The token keys: from the environment, or read once from Secrets Manager.
pub async fn tokens(config: &Config, aws: &SdkConfig) -> Result<Tokens, InitError> {
    let keys: Vec<SigningKey> = match &config.keys {
        None => return Err(ConfigError::Missing("JWT_SECRET_ARN or JWT_SECRET").into()),
        Some(KeySource::Env(secret)) => vec![SigningKey::from(secret.clone())],
        Some(KeySource::SecretArn(arn)) => {
            let client = aws_sdk_secretsmanager::Client::new(aws);
            let secret = client
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| InitError::Secret(Box::new(e)))?;
            let text = secret
                .secret_string()
                .ok_or_else(|| InitError::Secret("the secret has no SecretString".into()))?;
            keys_from_secret_text(text)
        }
    };
    if !config.local && keys.iter().any(|k| k.secret.expose_secret() == DEV_SECRET) {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET",
            why: "is the documented dev secret, accepted only in local runs (an AWS_ENDPOINT_URL_* override set)".into(),
        }
        .into());
    }
    Ok(Tokens::with_keys(keys, config.token_ttl_seconds)?
        .with_max_lifetime(config.token_max_lifetime_seconds)
        .with_issuer(config.jwt_issuer.clone())
        .with_audience(config.jwt_audience.clone()))
}

/// Longest the init warm-up may take: Lambda bills init (10 s at most), and a slow
/// endpoint must not hold the function back from serving. In-region, a connection
/// and handshake take milliseconds; under valgrind (`make bench`), about a second.
const PRECONNECT_BUDGET: Duration = Duration::from_secs(2);

/// The HTTP endpoint, ready to serve.
///
/// With `PRECONNECT`, both stores' clients are warmed up first (`Deleter::warm_up`):
/// their connections and TLS sessions open, their lazily built state made, in init
/// rather than in the first request. Off by default: on an on-demand cold start the
/// caller waits for init and the first request alike, so it gains nothing there.
pub async fn api(config: &Config, aws: &SdkConfig) -> Result<Api, InitError> {
    let deleter = deleter(config, aws);
    if config.preconnect {
        deleter.warm_up(Deadline::after(PRECONNECT_BUDGET)).await;
    }
    Ok(Api::new(
        deleter,
        tokens(config, aws).await?,
        config.max_ids,
        config.delete_abilities.clone(),
    ))
}

/// Attempts per call of the cleanup triggers: no caller waits on them, and a large
/// album runs into the services' rate limits by design.
const CLEANUP_MAX_ATTEMPTS: u32 = 8;

/// The cleanup triggers, ready to serve. Their clients retry in the SDK's adaptive
/// mode: a throttling answer (S3 `SlowDown`, DynamoDB throttling) lowers a client-wide
/// send rate that every concurrent call shares, and the rate recovers as calls
/// succeed, so an album cleanup settles near the services' limits instead of
/// retrying each call blindly.
pub fn cleanup(config: &Config, aws: &SdkConfig) -> Result<Cleanup, InitError> {
    let queue_url = config
        .cleanup_queue_url
        .clone()
        .ok_or(ConfigError::Missing("CLEANUP_QUEUE_URL"))?;
    let aws = &aws
        .to_builder()
        .retry_config(
            aws_config::retry::RetryConfig::adaptive().with_max_attempts(CLEANUP_MAX_ATTEMPTS),
        )
        .build();
    let handoff = SqsHandOff::new(aws_sdk_sqs::Client::new(aws), queue_url);
    Ok(Cleanup::new(
        deleter(config, aws),
        Arc::new(handoff),
        config.max_ids,
        config.album_page_size,
    )
    .with_album_prefetch(config.album_prefetch)
    .with_trash_table(config.trash.as_ref().map(|t| t.table.clone())))
}

/// The audit trigger, publishing to `AUDIT_BUS`.
pub fn audit(aws: &SdkConfig) -> Result<Audit, InitError> {
    let bus = config::audit_bus(|name| std::env::var(name).ok())?;
    let log = BridgeAuditLog::new(aws_sdk_eventbridge::Client::new(aws), bus);
    Ok(Audit::new(Arc::new(log)))
}

/// The async runtime: one thread on classic Lambda (one invocation at a time, the
/// cheapest start), worker threads on Lambda Managed Instances, where
/// `AWS_LAMBDA_MAX_CONCURRENCY` > 1 lets one environment serve invocations at once.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let concurrent = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| n > 1);
    let mut builder = if concurrent {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
}

/// JSON logs, one object per line, at the level named by `RUST_LOG` (`error`, `warn`,
/// `info` (default), `debug` or `trace`). A plain level rather than an env filter:
/// the filter's regex engine costs binary size and start-up time for no use here.
///
/// The level applies to this crate only. Other crates never log below `info`,
/// whatever `RUST_LOG` says: at `trace` the Lambda runtime logs every raw event
/// (the `Authorization` header and body included), and the SDK and HTTP crates log
/// requests; no log may hold a token or a body.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("image_delete", level)
        .with_target("delete_images", level)
        .with_target("cleanup", level)
        .with_default(level.min(tracing::Level::INFO));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .finish()
        .with(targets)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn a_ca_bundle_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("ca-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let roots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/aws-roots.pem");
        // GIVEN no bundle THEN nothing extra
        assert!(ca_bundle(None).unwrap().is_none());
        assert!(ca_bundle(Some("".into())).unwrap().is_none());
        // GIVEN a readable bundle of certificates THEN its bytes
        assert!(ca_bundle(Some(roots.into())).unwrap().is_some());
        // GIVEN a missing, broken or empty file THEN the start stops
        for bad in [dir.join("missing.pem"), garbage, empty] {
            assert!(matches!(
                ca_bundle(Some(bad.into())),
                Err(InitError::CaBundle(_))
            ));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_https_client_opens_tls_with_its_crypto_provider() {
        // GIVEN a loopback listener that records the first bytes a client sends
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_bytes = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 3];
            stream.read_exact(&mut head).await.unwrap();
            head // dropping the stream fails the handshake
        });
        // WHEN a DynamoDB call goes out through the function's HTTPS client
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKID", "SECRET", None, None, "test",
            ))
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .http_client(https_client(None).unwrap())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let call = aws_sdk_dynamodb::Client::from_conf(config)
            .list_tables()
            .send()
            .await;
        // THEN it began a TLS handshake (a handshake record, TLS 1.x), and the call
        // failed cleanly instead of panicking for want of a crypto provider
        let head = first_bytes.await.unwrap();
        assert_eq!(head[0], 0x16, "a TLS handshake record");
        assert_eq!(head[1], 0x03, "TLS major version");
        assert!(call.is_err());
    }

    #[tokio::test]
    async fn the_dev_secret_is_refused_unless_the_run_is_local() {
        let aws = SdkConfig::builder().build();
        for (endpoint, accepted) in [(None, false), (Some("http://127.0.0.1:8000"), true)] {
            // GIVEN the documented dev secret, with or without an endpoint override
            let mut vars = vec![
                ("IMAGES_TABLE", "t"),
                ("IMAGES_BUCKET", "b"),
                ("JWT_SECRET", DEV_SECRET),
            ];
            vars.extend(endpoint.map(|e| ("AWS_ENDPOINT_URL_DYNAMODB", e)));
            let config = Config::from_lookup(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
            // WHEN the keys are set up THEN only a local run accepts it
            assert_eq!(
                tokens(&config, &aws).await.is_ok(),
                accepted,
                "{endpoint:?}"
            );
        }
    }
}
