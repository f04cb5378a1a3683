//! [`join`] and [`race`]: `when_all` and `when_any` for a tuple of tasks of different
//! types, the way `tokio::join!` / `tokio::select!` read.
//!
//! Same determinism as the list combinators: children are polled in tuple order on every
//! poll, and the engine polls after each history event, so a race's winner is the child
//! whose completion comes first in history (the earliest in the tuple when several were
//! already complete), and a join's failure is the first in completion order.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Waits for every task of a tuple of 2 to 6 tasks, whatever their types: `Ok` with their
/// values as a tuple, in tuple order, or, if any failed, the **first failure in
/// completion order**, once every task has completed. This is
/// [`when_all`](super::when_all) for tasks of different output types; their error types
/// must be the same (every task of the context fails with
/// [`TaskFailedError`](crate::TaskFailedError)).
///
/// The tasks may be any futures (async blocks too): they are boxed here, so they need not
/// be [`Unpin`]. A timer has no `Result`: wrap it (`async { timer.await; Ok(()) }`) or
/// [`race`] it instead.
///
/// # Examples
///
/// An activity, a sub-orchestration and an entity call in parallel, three output types:
///
/// ```
/// use durabletask_sdk::orchestration::join;
/// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
///
/// async fn profile(ctx: OrchestrationContext, user: String) -> Result<String, Error> {
///     let visits = EntityInstanceId::new("counter", &user)?;
///     let (name, orders, count) = join((
///         ctx.call_activity::<_, String>("load_name", &user),
///         ctx.call_sub_orchestrator::<_, Vec<u64>>("list_orders", &user),
///         ctx.call_entity::<_, i64>(&visits, "get", ()),
///     ))
///     .await?;
///     Ok(format!("{name}: {} orders, {count} visits", orders.len()))
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("profile", profile);
/// ```
pub fn join<T: JoinTasks>(tasks: T) -> T::Join {
    tasks.into_join()
}

/// Waits for the first task of a tuple of 2 to 6 tasks, whatever their types, and says
/// which won with its output: [`Winner2::First`] for the first task, and so on. This is
/// [`when_any`](super::when_any) for tasks of different output types. The losers are
/// dropped: their durable work still happens, its results are ignored (cancel a losing
/// timer or event wait through its [`cancel_handle`](super::TimerTask::cancel_handle) if
/// it matters).
///
/// Deterministic: the winner is the task whose completion comes first in history; if
/// several were already complete when the race was first polled, the earliest in the
/// tuple. The tasks may be any futures (async blocks too).
///
/// # Examples
///
/// A deadline: an external event against a durable timer.
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::{Winner2, race};
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn await_approval(ctx: OrchestrationContext, _input: ()) -> Result<bool, Error> {
///     let approval = ctx.wait_for_external_event::<bool>("approval");
///     let deadline = ctx.create_timer_after(Duration::from_secs(60 * 60));
///     match race((approval, deadline)).await {
///         Winner2::First(approved) => Ok(approved?),
///         Winner2::Second(()) => Err(Error::new("ApprovalTimeout", "no approval within an hour")),
///     }
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("await_approval", await_approval);
/// ```
pub fn race<T: RaceTasks>(tasks: T) -> T::Race {
    tasks.into_race()
}

/// A tuple of 2 to 6 futures that [`join`] can wait for: each resolves to a `Result`, all
/// with the same error type. Implemented for tuples only; user code never implements it.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::join;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn dashboard(ctx: OrchestrationContext, user: String) -> Result<String, Error> {
///     // Any tuple of 2 to 6 tasks whose errors have one type is `JoinTasks`.
///     let tasks = (
///         ctx.call_activity::<_, String>("load_name", &user),
///         ctx.call_activity::<_, u32>("count_orders", &user),
///         ctx.call_activity::<_, bool>("is_premium", &user),
///     );
///     let (name, orders, premium) = join(tasks).await?;
///     Ok(format!("{name}: {orders} orders{}", if premium { ", premium" } else { "" }))
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("dashboard", dashboard);
/// let mut runtime = TestRuntime::new(registry);
/// runtime
///     .mock_activity("load_name", |user: String| Ok(user.to_uppercase()))
///     .mock_activity("count_orders", |_user: String| Ok(3))
///     .mock_activity("is_premium", |_user: String| Ok(true));
/// let id = runtime.start("dashboard", "ada")?;
/// assert_eq!(runtime.output::<String>(&id)?, "ADA: 3 orders, premium");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
pub trait JoinTasks {
    /// The future [`join`] returns.
    type Join: Future;

    /// Starts waiting for every task.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::JoinTasks;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn profile(ctx: OrchestrationContext, user: String) -> Result<String, Error> {
    ///     let tasks = (
    ///         ctx.call_activity::<_, String>("load_name", &user),
    ///         ctx.call_activity::<_, u32>("load_age", &user),
    ///     );
    ///     // The same as `join(tasks)`.
    ///     let (name, age) = tasks.into_join().await?;
    ///     Ok(format!("{name} ({age})"))
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("profile", profile);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime
    ///     .mock_activity("load_name", |_user: String| Ok("Ada Lovelace"))
    ///     .mock_activity("load_age", |_user: String| Ok(36));
    /// let id = runtime.start("profile", "ada")?;
    /// assert_eq!(runtime.output::<String>(&id)?, "Ada Lovelace (36)");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    fn into_join(self) -> Self::Join;
}

/// A tuple of 2 to 6 futures that [`race`] can race. Implemented for tuples only; user
/// code never implements it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::{Winner2, race};
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn quote(ctx: OrchestrationContext, sku: String) -> Result<String, Error> {
///     // Any tuple of 2 to 6 futures is `RaceTasks`, whatever their outputs.
///     let racers = (
///         ctx.call_activity::<_, u64>("fetch_price", &sku),
///         ctx.create_timer_after(Duration::from_secs(30)),
///     );
///     Ok(match race(racers).await {
///         Winner2::First(cents) => format!("{} cents", cents?),
///         Winner2::Second(()) => "no price within 30 s".to_owned(),
///     })
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("quote", quote);
/// let mut runtime = TestRuntime::new(registry);
/// runtime.mock_activity("fetch_price", |_sku: String| Ok(120));
/// let id = runtime.start("quote", "pen")?;
/// assert_eq!(runtime.output::<String>(&id)?, "120 cents");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
pub trait RaceTasks {
    /// The future [`race`] returns.
    type Race: Future;

    /// Starts the race.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{RaceTasks, Winner2};
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn await_ack(ctx: OrchestrationContext, _input: ()) -> Result<bool, Error> {
    ///     let racers = (
    ///         ctx.wait_for_external_event::<()>("ack"),
    ///         ctx.create_timer_after(Duration::from_secs(10)),
    ///     );
    ///     // The same as `race(racers)`.
    ///     Ok(matches!(racers.into_race().await, Winner2::First(Ok(()))))
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("await_ack", await_ack);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("await_ack", ())?;
    /// runtime.advance(Duration::from_secs(10))?;
    /// assert!(!runtime.output::<bool>(&id)?, "no ack came");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    fn into_race(self) -> Self::Race;
}

/// One child of a [`Join`]: still running, or its output. Public only because it appears
/// in `Join`'s type; it is not exported.
pub enum Slot<F: Future> {
    /// Not complete yet.
    Running(Pin<Box<F>>),
    /// Complete, with this output.
    Done(F::Output),
    /// Between taking the outputs out and resolving (never seen by a poll).
    Taken,
}

impl<F: Future> Slot<F> {
    /// Polls a running child; `Some(true)` when it has just failed (to keep the first
    /// failure in completion order).
    fn poll<T, E>(&mut self, cx: &mut Context<'_>) -> Option<bool>
    where
        F: Future<Output = Result<T, E>>,
    {
        let Slot::Running(child) = self else {
            return None;
        };
        let Poll::Ready(output) = child.as_mut().poll(cx) else {
            return None;
        };
        let failed = output.is_err();
        *self = Slot::Done(output);
        Some(failed)
    }
}

/// The future [`join`] returns: resolves to `Ok` with every output in tuple order, or to
/// the first error in completion order.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::{Join, join};
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn checkout(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
///     // Both calls start now; the join is awaited after the payment.
///     let lookups: Join<_> = join((
///         ctx.call_activity::<_, String>("load_address", &order),
///         ctx.call_activity::<_, u32>("count_items", &order),
///     ));
///     let receipt: String = ctx.call_activity("charge", &order).await?;
///     let (address, items) = lookups.await?;
///     Ok(format!("{receipt}: {items} items to {address}"))
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("checkout", checkout);
/// let mut runtime = TestRuntime::new(registry);
/// runtime
///     .mock_activity("load_address", |_order: String| Ok("1 Main St"))
///     .mock_activity("count_items", |_order: String| Ok(2))
///     .mock_activity("charge", |order: String| Ok(format!("{order} paid")));
/// let id = runtime.start("checkout", "A-7")?;
/// assert_eq!(runtime.output::<String>(&id)?, "A-7 paid: 2 items to 1 Main St");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Join<T> {
    slots: T,
    /// The tuple index of the child that failed first, in completion order.
    first_failure: Option<usize>,
}

// Children are boxed and outputs are never pinned, so moving a `Join` is fine.
impl<T> Unpin for Join<T> {}

/// The future [`race`] returns: resolves to the winner (a `Winner2` … `Winner6`).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::{Race, Winner3, race};
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn first_answer(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
///     let answers: Race<_> = race((
///         ctx.wait_for_external_event::<String>("email"),
///         ctx.wait_for_external_event::<String>("sms"),
///         ctx.wait_for_external_event::<String>("call"),
///     ));
///     Ok(match answers.await {
///         Winner3::First(text) => format!("by email: {}", text?),
///         Winner3::Second(text) => format!("by sms: {}", text?),
///         Winner3::Third(text) => format!("by phone: {}", text?),
///     })
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("first_answer", first_answer);
/// let mut runtime = TestRuntime::new(registry);
/// let id = runtime.start("first_answer", ())?;
/// runtime.raise_event(&id, "sms", "yes")?;
/// assert_eq!(runtime.output::<String>(&id)?, "by sms: yes");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Race<T> {
    children: T,
}

macro_rules! tuple_combinators {
    ($(
        $(#[$doc:meta])*
        $Winner:ident { $($F:ident $T:ident $value:ident $index:tt $Variant:ident),+ }
    )+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $Winner<$($T),+> {
            $(
                #[doc = concat!("Task ", stringify!($index), " of the tuple (counted from 0) won, with this output.")]
                $Variant($T),
            )+
        }

        impl<$($T),+> $Winner<$($T),+> {
            /// The winner's position in the tuple, from 0.
            ///
            /// # Examples
            ///
            /// ```
            /// use durabletask_sdk::orchestration::race;
            /// use durabletask_sdk::testing::TestRuntime;
            /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
            ///
            /// async fn fastest(ctx: OrchestrationContext, sku: String) -> Result<String, Error> {
            ///     let winner = race((
            ///         ctx.call_activity::<_, u64>("quote_acme", &sku),
            ///         ctx.call_activity::<_, u64>("quote_globex", &sku),
            ///     ))
            ///     .await;
            ///     Ok(["acme", "globex"][winner.index()].to_owned())
            /// }
            ///
            /// let mut registry = Registry::new();
            /// registry.orchestrator("fastest", fastest);
            /// let mut runtime = TestRuntime::new(registry);
            /// runtime
            ///     .mock_activity("quote_acme", |_sku: String| Ok(120))
            ///     .mock_activity("quote_globex", |_sku: String| Ok(99));
            /// let id = runtime.start("fastest", "pen")?;
            /// // Activities run in the order they were called here, so acme answers first.
            /// assert_eq!(runtime.output::<String>(&id)?, "acme");
            /// # Ok::<(), durabletask_sdk::testing::TestError>(())
            /// ```
            pub fn index(&self) -> usize {
                match self {
                    $(Self::$Variant(_) => $index,)+
                }
            }
        }

        impl<E, $($F, $T),+> JoinTasks for ($($F,)+)
        where
            $($F: Future<Output = Result<$T, E>>,)+
        {
            type Join = Join<($(Slot<$F>,)+)>;

            fn into_join(self) -> Self::Join {
                Join {
                    slots: ($(Slot::Running(Box::pin(self.$index)),)+),
                    first_failure: None,
                }
            }
        }

        impl<E, $($F, $T),+> Future for Join<($(Slot<$F>,)+)>
        where
            $($F: Future<Output = Result<$T, E>>,)+
        {
            type Output = Result<($($T,)+), E>;

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                let this = self.get_mut();
                // Tuple order, as `when_all` polls its list in index order.
                $(
                    if this.slots.$index.poll(cx) == Some(true) && this.first_failure.is_none() {
                        this.first_failure = Some($index);
                    }
                )+
                let taken = ($({ let _ = $index; Slot::Taken },)+);
                match std::mem::replace(&mut this.slots, taken) {
                    ($(Slot::Done($value),)+) => {
                        let first_failure = this.first_failure;
                        $(
                            if first_failure == Some($index) && let Err(error) = $value {
                                return Poll::Ready(Err(error));
                            }
                        )+
                        Poll::Ready(Ok(($(
                            match $value {
                                Ok(value) => value,
                                Err(error) => return Poll::Ready(Err(error)),
                            },
                        )+)))
                    }
                    // Some child still runs: put every slot back.
                    slots => {
                        this.slots = slots;
                        Poll::Pending
                    }
                }
            }
        }

        impl<$($F: Future),+> RaceTasks for ($($F,)+) {
            type Race = Race<($(Pin<Box<$F>>,)+)>;

            fn into_race(self) -> Self::Race {
                Race {
                    children: ($(Box::pin(self.$index),)+),
                }
            }
        }

        impl<$($F: Future),+> Future for Race<($(Pin<Box<$F>>,)+)> {
            type Output = $Winner<$($F::Output),+>;

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                let this = self.get_mut();
                // Tuple order, as `when_any` polls its list in index order.
                $(
                    if let Poll::Ready(output) = this.children.$index.as_mut().poll(cx) {
                        return Poll::Ready($Winner::$Variant(output));
                    }
                )+
                Poll::Pending
            }
        }
    )+};
}

tuple_combinators! {
    /// The winner of a [`race`] of two tasks, with its output.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::{Winner2, race};
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn fastest(ctx: OrchestrationContext, sku: String) -> Result<String, Error> {
    ///     let a = ctx.call_activity::<_, u64>("quote_a", &sku);
    ///     let b = ctx.call_activity::<_, String>("quote_b_as_text", &sku);
    ///     Ok(match race((a, b)).await {
    ///         Winner2::First(cents) => format!("{} cents", cents?),
    ///         Winner2::Second(text) => text?,
    ///     })
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("fastest", fastest);
    /// ```
    Winner2 { A TA a 0 First, B TB b 1 Second }
    /// The winner of a [`race`] of three tasks, with its output.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{Winner3, race};
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn decide(ctx: OrchestrationContext, _input: ()) -> Result<&'static str, Error> {
    ///     let approve = ctx.wait_for_external_event::<()>("approve");
    ///     let reject = ctx.wait_for_external_event::<String>("reject");
    ///     let deadline = ctx.create_timer_after(Duration::from_secs(3600));
    ///     Ok(match race((approve, reject, deadline)).await {
    ///         Winner3::First(_) => "approved",
    ///         Winner3::Second(_) => "rejected",
    ///         Winner3::Third(()) => "timed out",
    ///     })
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("decide", decide);
    /// ```
    Winner3 { A TA a 0 First, B TB b 1 Second, C TC c 2 Third }
    /// The winner of a [`race`] of four tasks, with its output.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::Winner4;
    ///
    /// let winner: Winner4<u8, (), String, bool> = Winner4::Fourth(true);
    /// assert_eq!(winner.index(), 3);
    /// ```
    Winner4 { A TA a 0 First, B TB b 1 Second, C TC c 2 Third, D TD d 3 Fourth }
    /// The winner of a [`race`] of five tasks, with its output.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::Winner5;
    ///
    /// let winner: Winner5<u8, u8, u8, u8, &str> = Winner5::Fifth("late");
    /// assert_eq!(winner.index(), 4);
    /// ```
    Winner5 { A TA a 0 First, B TB b 1 Second, C TC c 2 Third, D TD d 3 Fourth, E5 TE e 4 Fifth }
    /// The winner of a [`race`] of six tasks, with its output.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::Winner6;
    ///
    /// let winner: Winner6<u8, u8, u8, u8, u8, char> = Winner6::Sixth('z');
    /// assert_eq!(winner.index(), 5);
    /// ```
    Winner6 {
        A TA a 0 First, B TB b 1 Second, C TC c 2 Third, D TD d 3 Fourth, E5 TE e 4 Fifth,
        F6 TF f 5 Sixth
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// Completes when its flag is set.
    struct Gate<T: Clone> {
        open: Rc<Cell<bool>>,
        value: T,
    }

    impl<T: Clone + Unpin> Future for Gate<T> {
        type Output = T;

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
            if self.open.get() {
                Poll::Ready(self.value.clone())
            } else {
                Poll::Pending
            }
        }
    }

    fn gate<T: Clone>(value: T) -> (Rc<Cell<bool>>, Gate<T>) {
        let open = Rc::new(Cell::new(false));
        (Rc::clone(&open), Gate { open, value })
    }

    fn poll<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        Pin::new(future).poll(&mut cx)
    }

    #[test]
    fn a_join_keeps_tuple_order_and_fails_with_the_first_failure_to_complete() {
        let (open_a, a) = gate(Ok::<u8, &str>(1));
        let (open_b, b) = gate(Err::<String, &str>("b failed"));
        let (open_c, c) = gate(Err::<bool, &str>("c failed"));
        let mut joined = join((a, b, c));
        assert!(poll(&mut joined).is_pending());
        open_c.set(true);
        assert!(poll(&mut joined).is_pending());
        open_b.set(true);
        open_a.set(true);
        // c failed first, though b comes first in the tuple.
        assert_eq!(poll(&mut joined), Poll::Ready(Err("c failed")));
    }

    #[test]
    fn a_join_of_successes_gives_every_value() {
        let (open_a, a) = gate(Ok::<u8, ()>(7));
        let (open_b, b) = gate(Ok::<&str, ()>("seven"));
        let mut joined = join((a, b));
        open_b.set(true);
        assert!(poll(&mut joined).is_pending());
        open_a.set(true);
        assert_eq!(poll(&mut joined), Poll::Ready(Ok((7, "seven"))));
    }

    #[test]
    fn a_race_is_won_by_the_first_to_complete_and_ties_go_to_the_earliest() {
        let (open_a, a) = gate(1_u8);
        let (open_b, b) = gate("b");
        let mut raced = race((a, b));
        assert!(poll(&mut raced).is_pending());
        open_b.set(true);
        assert_eq!(poll(&mut raced), Poll::Ready(Winner2::Second("b")));

        let (open_a2, a) = gate(1_u8);
        let (open_b2, b) = gate("b");
        open_a2.set(true);
        open_b2.set(true);
        assert_eq!(poll(&mut race((a, b))), Poll::Ready(Winner2::First(1)));
        drop(open_a);
    }
}
