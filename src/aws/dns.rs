//! One name lookup for the connections a burst of calls opens to one host.
//!
//! hyper-util looks the endpoint's name up for every new connection, each lookup a
//! blocking `getaddrinfo` on a thread of tokio's blocking pool. The first 1000-id
//! request after a cold start opens about 40 connections (ten reads at once, then the
//! record deletes' ahead of them): 40 lookups of two names, each a query to the VPC
//! resolver on AWS, on threads tokio starts as they are needed; the reads' ten are on
//! the critical path. Here a lookup under way is joined
//! rather than repeated, and its answer serves every connection to that host opened
//! within [`FRESH`]. A failed lookup's error goes to the connections that were waiting
//! for it, and the next connection looks the name up afresh; an empty answer is not
//! kept. The cache holds one entry per endpoint name the process calls (a handful).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
// Tokio's clock: the tests pause it.
use tokio::time::Instant;

/// How long one lookup's answer serves new connections: long enough for one request's
/// burst of connections, short enough that a changed DNS answer is followed within
/// seconds (AWS endpoints publish short TTLs).
pub const FRESH: Duration = Duration::from_secs(5);

/// A resolver (by default the system's, `getaddrinfo`) whose lookups are shared per
/// host; clones share them.
#[derive(Clone, Debug)]
pub struct SharedLookups<R = GaiResolver> {
    inner: R,
    fresh: Duration,
    hosts: Arc<Mutex<HashMap<Name, Arc<HostLookup>>>>,
}

/// The last answer for one host, behind an async lock: the one lookup under way holds
/// it, and the connections that want the same host wait for its answer.
#[derive(Debug, Default)]
struct HostLookup {
    last: tokio::sync::Mutex<Option<Answer>>,
    /// Lookups finished so far: a failure goes to the connections that asked before
    /// it finished, never to later ones.
    done: AtomicU64,
}

#[derive(Debug)]
enum Answer {
    Found(Vec<SocketAddr>, Instant),
    Failed(io::ErrorKind, String),
}

impl Default for SharedLookups {
    fn default() -> Self {
        Self::new(GaiResolver::new(), FRESH)
    }
}

impl<R> SharedLookups<R> {
    pub fn new(inner: R, fresh: Duration) -> Self {
        Self {
            inner,
            fresh,
            hosts: Arc::default(),
        }
    }
}

impl<R> tower_service::Service<Name> for SharedLookups<R>
where
    R: tower_service::Service<Name, Error = io::Error> + Clone + Send + 'static,
    R::Response: Iterator<Item = SocketAddr>,
    R::Future: Send,
{
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = self
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.clone())
            .or_default()
            .clone();
        let mut inner = self.inner.clone();
        let fresh = self.fresh;
        let asked = host.done.load(Ordering::Acquire);
        Box::pin(async move {
            let mut last = host.last.lock().await;
            match last.as_ref() {
                Some(Answer::Found(addrs, at)) if at.elapsed() < fresh => {
                    return Ok(addrs.clone().into_iter());
                }
                Some(Answer::Failed(kind, message))
                    if host.done.load(Ordering::Acquire) > asked =>
                {
                    return Err(io::Error::new(*kind, message.clone()));
                }
                _ => {}
            }
            let found = match std::future::poll_fn(|cx| inner.poll_ready(cx)).await {
                Ok(()) => inner.call(name).await.map(Iterator::collect::<Vec<_>>),
                Err(err) => Err(err),
            };
            *last = match &found {
                Ok(addrs) if addrs.is_empty() => None,
                Ok(addrs) => Some(Answer::Found(addrs.clone(), Instant::now())),
                Err(err) => Some(Answer::Failed(err.kind(), err.to_string())),
            };
            host.done.fetch_add(1, Ordering::AcqRel);
            found.map(Vec::into_iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower_service::Service;

    /// A resolver that counts its lookups and answers after a short wait: one address
    /// per lookup numbered by the count, or an error while `failing` holds.
    #[derive(Clone, Default)]
    struct Counting {
        lookups: Arc<AtomicUsize>,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Service<Name> for Counting {
        type Response = std::vec::IntoIter<SocketAddr>;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _name: Name) -> Self::Future {
            let n = self.lookups.fetch_add(1, Ordering::SeqCst) + 1;
            let failing = self.failing.load(Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if failing {
                    return Err(io::Error::other("no answer"));
                }
                let addr = SocketAddr::from(([127, 0, 0, 1], u16::try_from(n).unwrap()));
                Ok(vec![addr].into_iter())
            })
        }
    }

    fn name(host: &str) -> Name {
        Name::from_str(host).unwrap()
    }

    async fn resolve(lookups: &mut SharedLookups<Counting>, host: &str) -> io::Result<u16> {
        let mut addrs = lookups.call(name(host)).await?;
        Ok(addrs.next().unwrap().port())
    }

    #[tokio::test(start_paused = true)]
    async fn connections_opened_together_share_one_lookup_per_host() {
        // GIVEN shared lookups over a counting resolver
        let counting = Counting::default();
        let lookups = SharedLookups::new(counting.clone(), FRESH);
        // WHEN ten connections to one host and two to another are opened at once
        let calls = (0..12).map(|i| {
            let mut lookups = lookups.clone();
            async move {
                let host = if i < 10 { "dynamodb" } else { "s3" };
                resolve(&mut lookups, host).await.unwrap()
            }
        });
        let ports = futures_util::future::join_all(calls).await;
        // THEN each host was looked up once, and its connections all got its answer
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 2);
        assert!(ports[..10].iter().all(|p| *p == ports[0]));
        assert_ne!(ports[10], ports[0]);
        assert_eq!(ports[10], ports[11]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_serves_only_while_fresh() {
        // GIVEN one lookup done
        let counting = Counting::default();
        let mut lookups = SharedLookups::new(counting.clone(), FRESH);
        let first = resolve(&mut lookups, "dynamodb").await.unwrap();
        // WHEN the next connection comes just before FRESH has passed THEN it is served
        // the same answer, without a lookup
        tokio::time::advance(FRESH - Duration::from_millis(100)).await;
        assert_eq!(resolve(&mut lookups, "dynamodb").await.unwrap(), first);
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 1);
        // WHEN one comes after THEN the name is looked up again
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_ne!(resolve(&mut lookups, "dynamodb").await.unwrap(), first);
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_lookup_is_not_kept() {
        // GIVEN a resolver that fails
        let counting = Counting::default();
        counting.failing.store(true, Ordering::SeqCst);
        let mut lookups = SharedLookups::new(counting.clone(), FRESH);
        // WHEN a connection's lookup fails THEN it gets the error
        assert!(resolve(&mut lookups, "dynamodb").await.is_err());
        // WHEN the resolver recovers THEN the next connection looks the name up afresh
        counting.failing.store(false, Ordering::SeqCst);
        assert!(resolve(&mut lookups, "dynamodb").await.is_ok());
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_waiting_for_a_failed_lookup_get_its_error() {
        // GIVEN a resolver that fails
        let counting = Counting::default();
        counting.failing.store(true, Ordering::SeqCst);
        let lookups = SharedLookups::new(counting.clone(), FRESH);
        // WHEN five connections to one host are opened at once
        let calls = (0..5).map(|_| {
            let mut lookups = lookups.clone();
            async move { resolve(&mut lookups, "dynamodb").await }
        });
        let answers = futures_util::future::join_all(calls).await;
        // THEN all five fail after the one lookup, rather than one after another
        assert!(answers.iter().all(Result::is_err));
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_system_resolver_answers_through_it() {
        // GIVEN the default (getaddrinfo) lookups WHEN localhost is looked up twice
        let mut lookups = SharedLookups::default();
        let first: Vec<SocketAddr> = lookups.call(name("localhost")).await.unwrap().collect();
        let second: Vec<SocketAddr> = lookups.call(name("localhost")).await.unwrap().collect();
        // THEN it is a loopback address, the same both times
        assert!(!first.is_empty() && first.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(first, second);
    }
}
