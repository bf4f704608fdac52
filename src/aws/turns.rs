//! Calls started together go out one scheduler turn apart, in the order they start.
//!
//! On the one-thread runtime, the calls of a batch that are polled in the same round
//! are all built and signed before any connection task runs: the first request
//! leaves only when the last one is built, all the answers come back together, and
//! they are then read one after another while nothing else can happen. Taken in
//! turns, each request is on the wire as soon as it is built; the answers come back
//! in the same order, a call's build time apart, and reading one overlaps the wait
//! for the next. The last request leaves no later than before, and only its own
//! answer is read after it arrives.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

/// The order in which calls take their turns; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Turns {
    /// Says when the call that started last has been polled once (or dropped).
    last: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

impl Turns {
    /// `call`, run once the call that took a turn before it has been polled once
    /// and the runtime has had a turn since (its connection task has written it);
    /// at once if there is none, or it is done or gone. The order is that in which
    /// `take` is called.
    pub fn take<F: Future>(&self, call: F) -> Turn<F, impl Future<Output = ()>> {
        let (polled, next) = oneshot::channel();
        let before = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(next);
        Turn {
            call,
            pause: before.is_some().then(tokio::task::yield_now),
            before,
            polled: Some(polled),
        }
    }
}

pin_project_lite::pin_project! {
    /// A call waiting for its turn, then running. The call is held in place (not
    /// boxed, not copied into a larger state machine): SDK calls' futures are large.
    pub struct Turn<F, P> {
        #[pin]
        call: F,
        // The call before this one; `None` once it has been polled (or there is none).
        before: Option<oneshot::Receiver<()>>,
        // The runtime's turn after it, so that its connection task writes it first.
        #[pin]
        pause: Option<P>,
        // Tells the call after this one that this one has been polled.
        polled: Option<oneshot::Sender<()>>,
    }
}

impl<F: Future, P: Future<Output = ()>> Future for Turn<F, P> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if let Some(before) = this.before.as_mut() {
            // Err: the call before was dropped, which is as good as done.
            std::task::ready!(Pin::new(before).poll(cx)).ok();
            *this.before = None;
        }
        if let Some(pause) = this.pause.as_mut().as_pin_mut() {
            std::task::ready!(pause.poll(cx));
            this.pause.set(None);
        }
        let poll = this.call.poll(cx);
        if let Some(polled) = this.polled.take() {
            let _ = polled.send(());
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A call that, when first polled, records how many "connection tasks" have run
    /// so far, then spawns one of its own (what hyper does to send a request).
    async fn call(sent: Arc<AtomicUsize>, seen: Arc<Mutex<Vec<usize>>>, i: usize) -> usize {
        seen.lock().unwrap().push(sent.load(Ordering::SeqCst));
        tokio::spawn(async move {
            sent.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        i
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_call_starts_after_the_one_before_has_gone_out() {
        // GIVEN five calls run together, each taking a turn
        let turns = Turns::default();
        let sent = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let calls = (0..5).map(|i| turns.take(call(sent.clone(), seen.clone(), i)));
        // WHEN they run concurrently on the one-thread runtime
        let mut done = futures_util::future::join_all(calls).await;
        // THEN each was built after every call before it had gone out (its spawned
        // task had run), and all finished with their own result
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        done.sort();
        assert_eq!(done, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_turns_every_call_is_built_before_any_goes_out() {
        // GIVEN the same five calls without turns (what the test above guards against)
        let sent = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let calls = (0..5).map(|i| call(sent.clone(), seen.clone(), i));
        // WHEN they run concurrently THEN all were built before any went out
        futures_util::future::join_all(calls).await;
        assert_eq!(*seen.lock().unwrap(), vec![0, 0, 0, 0, 0]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_dropped_while_waiting_for_its_turn_does_not_hold_up_the_next() {
        use futures_util::FutureExt;
        // GIVEN a call that never finishes, a second waiting for its turn behind it
        // and a third behind the second
        let turns = Turns::default();
        let mut first = Box::pin(turns.take(std::future::pending::<()>()));
        let mut second = Box::pin(turns.take(async { 2 }));
        let mut third = Box::pin(turns.take(async { 3 }));
        assert!((&mut first).now_or_never().is_none());
        assert!((&mut second).now_or_never().is_none());
        assert!((&mut third).now_or_never().is_none());
        // WHEN the second is dropped before its turn came
        drop(second);
        // THEN the third still runs
        assert_eq!(third.await, 3);
    }
}
