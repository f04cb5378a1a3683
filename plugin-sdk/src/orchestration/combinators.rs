//! `when_all` / `when_any`: wait for several durable tasks at once, deterministically.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Waits for every task (spec §4.9): `Ok` with the values in input order, whatever order
/// they completed in, or, if any failed, the **first failure in completion order** (still
/// only once every task has completed, as the reference SDK does). An empty list
/// completes at once with `Ok(vec![])`.
///
/// # Examples
///
/// Fan-out/fan-in: schedule every call first, then wait for them together. The activities
/// run in parallel.
///
/// ```
/// use durabletask_sdk::orchestration::when_all;
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn greet(ctx: OrchestrationContext, cities: Vec<String>) -> Result<Vec<String>, Error> {
///     let tasks = cities
///         .iter()
///         .map(|city| ctx.call_activity::<_, String>("say_hello", city))
///         .collect();
///     // `?` fails the orchestration with the first failure, if any.
///     let greetings = when_all(tasks).await?;
///     Ok(greetings)
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("greet", greet);
/// ```
///
/// For tasks of different output types, use [`join`](super::join) with a tuple. For
/// futures that do not return a `Result` (timers), or to see every outcome, use
/// `futures::future::join_all`, which the engine supports as well.
///
/// Only the children that were woken are polled again, so fanning out to thousands of
/// activities stays linear. They are polled in index order, which keeps any calls they
/// make after their own awaits deterministic.
pub fn when_all<T, E, F: Future<Output = Result<T, E>>>(futures: Vec<F>) -> WhenAll<F> {
    let count = futures.len();
    let ready = Arc::new(ReadySet::default());
    let wakers = (0..count)
        .map(|index| {
            Waker::from(Arc::new(ChildWaker {
                index,
                set: Arc::clone(&ready),
            }))
        })
        .collect();
    WhenAll {
        outputs: std::iter::repeat_with(|| None).take(count).collect(),
        children: futures.into_iter().map(|f| Some(Box::pin(f))).collect(),
        wakers,
        ready,
        to_poll: Vec::new(),
        remaining: count,
        first_failure: None,
        polled_once: false,
    }
}

/// The future [`when_all`] returns: resolves to `Ok` with every output in input order, or
/// to the first error in completion order.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::{ActivityTask, WhenAll, when_all};
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn total(ctx: OrchestrationContext, skus: Vec<String>) -> Result<u64, Error> {
///     // Every call is scheduled here; the future waits for all of them.
///     let prices: WhenAll<ActivityTask<u64>> =
///         when_all(skus.iter().map(|sku| ctx.call_activity("price", sku)).collect());
///     Ok(prices.await?.iter().sum())
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("total", total);
/// let mut runtime = TestRuntime::new(registry);
/// runtime.mock_activity("price", |sku: String| Ok(sku.len() as u64 * 100));
/// let id = runtime.start("total", ["pen", "notebook"])?;
/// assert_eq!(runtime.output::<u64>(&id)?, 1100);
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct WhenAll<F: Future> {
    children: Vec<Option<Pin<Box<F>>>>,
    outputs: Vec<Option<F::Output>>,
    wakers: Vec<Waker>,
    ready: Arc<ReadySet>,
    /// The children to poll this round (kept to reuse its allocation).
    to_poll: Vec<usize>,
    remaining: usize,
    /// The child that failed first, in completion order.
    first_failure: Option<usize>,
    polled_once: bool,
}

// Children are boxed and outputs are never pinned, so moving a `WhenAll` is fine.
impl<F: Future> Unpin for WhenAll<F> {}

impl<T, E, F: Future<Output = Result<T, E>>> Future for WhenAll<F> {
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let first_round = !this.polled_once;
        {
            let mut ready = this.ready.lock();
            match &mut ready.parent {
                Some(parent) => parent.clone_from(cx.waker()),
                None => ready.parent = Some(cx.waker().clone()),
            }
            this.to_poll.clear();
            if first_round {
                ready.indices.clear();
            } else {
                // Swapped, not copied: both vectors keep their capacity for later rounds.
                std::mem::swap(&mut ready.indices, &mut this.to_poll);
            }
        }
        this.polled_once = true;
        // Index order, each child once, however often it was woken.
        this.to_poll.sort_unstable();
        this.to_poll.dedup();
        let rounds = if first_round {
            this.children.len()
        } else {
            this.to_poll.len()
        };
        for position in 0..rounds {
            let index = if first_round {
                position
            } else {
                this.to_poll.get(position).copied().unwrap_or(usize::MAX)
            };
            let (Some(slot), Some(waker)) = (this.children.get_mut(index), this.wakers.get(index))
            else {
                continue;
            };
            let Some(child) = slot else { continue };
            if let Poll::Ready(output) = child.as_mut().poll(&mut Context::from_waker(waker)) {
                *slot = None;
                if output.is_err() && this.first_failure.is_none() {
                    this.first_failure = Some(index);
                }
                if let Some(out) = this.outputs.get_mut(index) {
                    *out = Some(output);
                }
                this.remaining = this.remaining.saturating_sub(1);
            }
        }
        if this.remaining == 0 {
            let mut outputs = std::mem::take(&mut this.outputs);
            if let Some(Some(Err(error))) = this
                .first_failure
                .and_then(|index| outputs.get_mut(index))
                .map(Option::take)
            {
                return Poll::Ready(Err(error));
            }
            // Sized up front: collecting `Result`s could not know how many there are.
            let mut values = Vec::with_capacity(outputs.len());
            for output in outputs.into_iter().flatten() {
                match output {
                    Ok(value) => values.push(value),
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
            return Poll::Ready(Ok(values));
        }
        // A child that woke itself while being polled is polled again on the next round;
        // the engine bounds how often that may happen.
        if !this.ready.lock().indices.is_empty() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[derive(Default)]
struct ReadySet {
    inner: Mutex<ReadyInner>,
}

#[derive(Default)]
struct ReadyInner {
    /// Children woken since the last poll, in wake order (possibly repeated).
    indices: Vec<usize>,
    parent: Option<Waker>,
}

impl ReadySet {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyInner> {
        // A poisoned lock only means a panic elsewhere; the set itself is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct ChildWaker {
    index: usize,
    set: Arc<ReadySet>,
}

impl Wake for ChildWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let parent = {
            let mut ready = self.set.lock();
            ready.indices.push(self.index);
            ready.parent.clone()
        };
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

/// Waits for the first future to complete and returns its index and output. The others
/// are dropped: their durable work still happens, its results are ignored.
///
/// Deterministic: the engine polls after each history event, so the winner is the first
/// child to complete in history order (the lowest index if several were already complete
/// when `when_any` was first polled). An empty list never completes (an orchestrator
/// awaiting it fails as waiting on nothing durable).
///
/// The futures must be [`Unpin`]: the durable tasks of
/// [`OrchestrationContext`](super::OrchestrationContext) are; box (`Box::pin`) async blocks,
/// or futures of different types to mix them.
///
/// # Examples
///
/// Take whichever of two equivalent activities answers first:
///
/// ```
/// use durabletask_sdk::orchestration::when_any;
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn quote(ctx: OrchestrationContext, sku: String) -> Result<u64, Error> {
///     let tasks = vec![
///         ctx.call_activity::<_, u64>("quote_from_supplier_a", &sku),
///         ctx.call_activity::<_, u64>("quote_from_supplier_b", &sku),
///     ];
///     let (_winner, price) = when_any(tasks).await;
///     Ok(price?)
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("quote", quote);
/// ```
///
/// A timeout: race an external event against a durable timer. Their output types differ,
/// so both are boxed as the same trait object here; [`race`](super::race) takes them as
/// they are, in a tuple, and is the shorter way to write this:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::when_any;
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn await_approval(ctx: OrchestrationContext, _input: ()) -> Result<bool, Error> {
///     let approval = ctx.wait_for_external_event::<bool>("approval");
///     let timeout = ctx.create_timer_after(Duration::from_secs(60 * 60));
///     let racers: Vec<Pin<Box<dyn Future<Output = Option<bool>>>>> = vec![
///         Box::pin(async move { approval.await.ok() }),
///         Box::pin(async move {
///             timeout.await;
///             None
///         }),
///     ];
///     match when_any(racers).await {
///         (_, Some(approved)) => Ok(approved),
///         (_, None) => Err(Error::new("ApprovalTimeout", "no approval within an hour")),
///     }
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("await_approval", await_approval);
/// ```
pub fn when_any<F: Future + Unpin>(futures: Vec<F>) -> WhenAny<F> {
    WhenAny { children: futures }
}

/// The future [`when_any`] returns: resolves to the index of the first future to
/// complete and its output.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::{EventTask, WhenAny, when_any};
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn first_reply(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
///     let replies: WhenAny<EventTask<String>> = when_any(vec![
///         ctx.wait_for_external_event("reply_from_ada"),
///         ctx.wait_for_external_event("reply_from_bob"),
///     ]);
///     let (index, reply) = replies.await;
///     Ok(format!("#{index}: {}", reply?))
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("first_reply", first_reply);
/// let mut runtime = TestRuntime::new(registry);
/// let id = runtime.start("first_reply", ())?;
/// runtime.raise_event(&id, "reply_from_bob", "on my way")?;
/// assert_eq!(runtime.output::<String>(&id)?, "#1: on my way");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct WhenAny<F> {
    children: Vec<F>,
}

impl<F: Future + Unpin> Future for WhenAny<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for (index, child) in this.children.iter_mut().enumerate() {
            if let Poll::Ready(output) = Pin::new(child).poll(cx) {
                return Poll::Ready((index, output));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A child that logs each poll and completes when `done` says so.
    struct Probe {
        index: usize,
        log: Rc<RefCell<Vec<usize>>>,
        wakers: Rc<RefCell<Vec<Option<Waker>>>>,
        done: Rc<RefCell<Vec<bool>>>,
    }

    impl Future for Probe {
        type Output = Result<usize, ()>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.log.borrow_mut().push(self.index);
            if self.done.borrow().get(self.index).copied().unwrap_or(false) {
                return Poll::Ready(Ok(self.index * 10));
            }
            if let Some(slot) = self.wakers.borrow_mut().get_mut(self.index) {
                *slot = Some(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    #[test]
    fn woken_children_are_polled_once_each_in_index_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let wakers = Rc::new(RefCell::new(vec![None; 5]));
        let done = Rc::new(RefCell::new(vec![false; 5]));
        let probes = (0..5)
            .map(|index| Probe {
                index,
                log: Rc::clone(&log),
                wakers: Rc::clone(&wakers),
                done: Rc::clone(&done),
            })
            .collect();
        let mut all = when_all(probes);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(Pin::new(&mut all).poll(&mut cx).is_pending());
        assert_eq!(std::mem::take(&mut *log.borrow_mut()), [0, 1, 2, 3, 4]);

        // Woken out of order, some twice: polled once each, in index order.
        for index in [3, 1, 3, 4, 1] {
            if let Some(slot) = done.borrow_mut().get_mut(index) {
                *slot = true;
            }
            let waker = wakers.borrow().get(index).cloned().flatten();
            waker.into_iter().for_each(Waker::wake);
        }
        assert!(Pin::new(&mut all).poll(&mut cx).is_pending());
        assert_eq!(std::mem::take(&mut *log.borrow_mut()), [1, 3, 4]);

        for index in [2, 0] {
            if let Some(slot) = done.borrow_mut().get_mut(index) {
                *slot = true;
            }
            let waker = wakers.borrow().get(index).cloned().flatten();
            waker.into_iter().for_each(Waker::wake);
        }
        assert_eq!(
            Pin::new(&mut all).poll(&mut cx),
            Poll::Ready(Ok(vec![0, 10, 20, 30, 40]))
        );
        assert_eq!(*log.borrow(), [0, 2]);
    }
}
