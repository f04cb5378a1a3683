//! Critical sections (spec §6.7): the lock state, the rules calls and signals must follow
//! inside one, and leaving it (one `entityUnlockSent` per locked entity).
//!
//! Unlike the reference, the lock set and the entities free to call are two separate
//! sets (spec §9 #6): every entity of the lock set is unlocked, in lock-set order, and a
//! second call to an entity whose call is still outstanding gets its own message.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use durabletask_proto as proto;
use proto::orchestrator_action::OrchestratorActionType;
use proto::send_entity_message_action::EntityMessageType;

use super::state::State;
use crate::entity::EntityInstanceId;

/// The critical section the orchestration is in, from the lock request on.
pub(crate) struct Section {
    /// The lock request's `criticalSectionId`.
    pub(crate) id: Rc<str>,
    /// The sorted, deduplicated entity ids.
    pub(crate) lock_set: Rc<[EntityInstanceId]>,
    /// Locked entities with no call outstanding; empty until the grant.
    available: Vec<EntityInstanceId>,
    /// Whether `entityLockGranted` arrived.
    granted: bool,
}

impl Section {
    pub(crate) fn new(id: Rc<str>, lock_set: Rc<[EntityInstanceId]>) -> Self {
        Self {
            id,
            lock_set,
            available: Vec::new(),
            granted: false,
        }
    }

    /// The locks are held: every locked entity may be called.
    pub(crate) fn grant(&mut self) {
        self.granted = true;
        self.available = self.lock_set.to_vec();
    }

    fn is_locked(&self, entity: &EntityInstanceId) -> bool {
        self.lock_set.iter().any(|e| e == entity)
    }

    /// A call to `entity` returned: it may be called again.
    pub(crate) fn call_returned(&mut self, entity: &EntityInstanceId) {
        if self.granted && self.is_locked(entity) && !self.available.contains(entity) {
            self.available.push(entity.clone());
        }
    }
}

/// Why `lock_entities` may not enter a second section.
pub(crate) const NESTED_LOCK: &str =
    "Must not enter another critical section from within a critical section.";
/// Why `lock_entities` needs at least one entity.
pub(crate) const EMPTY_LOCK_SET: &str =
    "Failed to create entity lock request: lock_entities needs at least one entity.";

/// Checks a call to `entity` against the rules of the current section, if any, and marks
/// the entity as in use. `Err` is the rule broken.
pub(crate) fn check_call(state: &mut State, entity: &EntityInstanceId) -> Result<(), &'static str> {
    let Some(section) = state.entities.section.as_mut() else {
        return Ok(());
    };
    if !section.granted {
        return Err("Must await the completion of the lock request prior to calling any entity.");
    }
    if let Some(at) = section.available.iter().position(|e| e == entity) {
        section.available.remove(at);
        return Ok(());
    }
    if section.is_locked(entity) {
        return Err(
            "Must not call an entity from a critical section while a prior call to the same \
             entity is still pending.",
        );
    }
    Err("Must not call an entity from a critical section if it is not one of the locked entities.")
}

/// Checks a signal to `entity` against the rules of the current section, if any.
pub(crate) fn check_signal(state: &State, entity: &EntityInstanceId) -> Result<(), &'static str> {
    match &state.entities.section {
        Some(section) if section.is_locked(entity) => {
            Err("Must not signal a locked entity from a critical section.")
        }
        _ => Ok(()),
    }
}

/// Leaves the current section, if any: one unlock per locked entity, in lock-set order,
/// each with its own action id.
pub(crate) fn exit(state: &mut State) {
    let Some(section) = state.entities.section.take() else {
        return;
    };
    let parent = Some(state.instance_id.to_string());
    let mut ids = Vec::with_capacity(section.lock_set.len());
    for entity in section.lock_set.iter() {
        let id = state.next_id();
        state.insert_action(
            id,
            OrchestratorActionType::SendEntityMessage(proto::SendEntityMessageAction {
                entity_message_type: Some(EntityMessageType::EntityUnlockSent(
                    proto::EntityUnlockSentEvent {
                        critical_section_id: section.id.to_string(),
                        parent_instance_id: parent.clone(),
                        target_instance_id: Some(entity.to_string()),
                    },
                )),
            }),
        );
        ids.push(id);
    }
    state
        .entities
        .unlocks
        .entry(section.id.to_string())
        .or_default()
        .extend(ids);
}

/// `entityUnlockSent`: history confirms the unlocks of a section, all of them at once.
pub(crate) fn unlock_sent(state: &mut State, section_id: &str) {
    for id in state
        .entities
        .unlocks
        .remove(section_id)
        .unwrap_or_default()
    {
        state.actions.remove(id);
    }
}

/// The locks of a granted [`lock_entities`](super::OrchestrationContext::lock_entities)
/// request: while it is held, the orchestration may call the locked entities (one call
/// per entity at a time) and no other entity.
///
/// What the locks guarantee is mutual exclusion among critical sections: no other
/// orchestration's lock request on any of these entities is granted until this section
/// is left. Whether plain calls and signals to a locked entity, from orchestrations that
/// did not lock it or from clients, wait for the section too depends on the backend:
/// Microsoft's in-memory backend holds back only other lock requests and lets them
/// through. So make every orchestration that changes these entities while others may
/// lock them take the lock as well; then no change reaches them mid-section on any
/// backend.
///
/// Leave the section with [`release`](Self::release), or turn it into a
/// [`CriticalSectionGuard`] with [`into_guard`](Self::into_guard) to leave it at the end of
/// the scope. A section not released is left automatically when the orchestration
/// completes, fails or continues as new, so the entities are never left locked. Dropping
/// a `CriticalSection` itself does **not** release the locks (the guard does).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
///
/// async fn transfer(ctx: OrchestrationContext, amount: i64) -> Result<(), Error> {
///     let alice = EntityInstanceId::new("account", "alice")?;
///     let bob = EntityInstanceId::new("account", "bob")?;
///     let section = ctx.lock_entities(&[alice.clone(), bob.clone()]).await?;
///     let balance: i64 = ctx.call_entity(&alice, "balance", ()).await?;
///     if balance >= amount {
///         ctx.call_entity::<_, ()>(&alice, "withdraw", amount).await?;
///         ctx.call_entity::<_, ()>(&bob, "deposit", amount).await?;
///     }
///     section.release();
///     Ok(())
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("transfer", transfer);
/// ```
#[must_use = "the locks are held until `release` is called or the orchestration ends"]
pub struct CriticalSection {
    state: Weak<RefCell<State>>,
    id: Rc<str>,
    lock_set: Rc<[EntityInstanceId]>,
}

impl CriticalSection {
    pub(crate) fn new(
        state: Weak<RefCell<State>>,
        id: Rc<str>,
        lock_set: Rc<[EntityInstanceId]>,
    ) -> Self {
        Self {
            state,
            id,
            lock_set,
        }
    }

    /// The lock request's `criticalSectionId` (from
    /// [`new_uuid`](super::OrchestrationContext::new_uuid)).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn traced(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     let section = ctx.lock_entities(&[EntityInstanceId::new("counter", "a")?]).await?;
    ///     tracing::debug!(section = section.id(), "locked");
    ///     section.release();
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("traced", traced);
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The locked entities, sorted (by their `@name@key` form) and without duplicates.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn locked(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    ///     let ids = ["@Counter@b", "@counter@a", "@counter@b"].map(EntityInstanceId::parse);
    ///     let ids = ids.into_iter().collect::<Result<Vec<_>, _>>()?;
    ///     let section = ctx.lock_entities(&ids).await?;
    ///     // ["@counter@a", "@counter@b"]
    ///     let entities = section.locked_entities().iter().map(|id| id.to_string()).collect();
    ///     section.release();
    ///     Ok(entities)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("locked", locked);
    /// ```
    pub fn locked_entities(&self) -> &[EntityInstanceId] {
        &self.lock_set
    }

    /// Leaves the section: one unlock message per locked entity, in the order of
    /// [`locked_entities`](Self::locked_entities), each taking the next action id. Does
    /// nothing if the section was already left (the orchestration ended).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn reset_both(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     let a = EntityInstanceId::new("counter", "a")?;
    ///     let b = EntityInstanceId::new("counter", "b")?;
    ///     let section = ctx.lock_entities(&[a.clone(), b.clone()]).await?;
    ///     ctx.call_entity::<_, ()>(&a, "reset", ()).await?;
    ///     ctx.call_entity::<_, ()>(&b, "reset", ()).await?;
    ///     section.release();
    ///     // Outside the section again: signals to either entity are allowed.
    ///     ctx.signal_entity(&a, "add", 1)?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("reset_both", reset_both);
    /// ```
    pub fn release(self) {
        self.leave();
    }

    /// Turns the section into a guard that leaves it when it goes out of scope, as a
    /// `MutexGuard` unlocks: on every path out of the block, `?` and early `return`s
    /// included. What it sends is what [`release`](Self::release) sends, at the point the
    /// guard is dropped.
    ///
    /// Bind it to a name (`let _locks = …`): `let _ = …` drops it, and leaves the
    /// section, at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn transfer(ctx: OrchestrationContext, amount: i64) -> Result<bool, Error> {
    ///     let alice = EntityInstanceId::new("account", "alice")?;
    ///     let bob = EntityInstanceId::new("account", "bob")?;
    ///     let _locks = ctx.lock_entities(&[alice.clone(), bob.clone()]).await?.into_guard();
    ///     let balance: i64 = ctx.call_entity(&alice, "balance", ()).await?;
    ///     if balance < amount {
    ///         return Ok(false); // the section is left here…
    ///     }
    ///     ctx.call_entity::<_, ()>(&alice, "withdraw", amount).await?;
    ///     ctx.call_entity::<_, ()>(&bob, "deposit", amount).await?;
    ///     Ok(true) // …or here (or at a failed `?`)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("transfer", transfer);
    /// ```
    pub fn into_guard(self) -> CriticalSectionGuard {
        CriticalSectionGuard { section: self }
    }

    /// Leaves the section if it is still the one the orchestration is in.
    fn leave(&self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let Ok(mut state) = state.try_borrow_mut() else {
            return;
        };
        if state
            .entities
            .section
            .as_ref()
            .is_some_and(|s| s.id == self.id)
        {
            exit(&mut state);
        }
    }
}

/// A [`CriticalSection`] that is left when the guard goes out of scope (from
/// [`CriticalSection::into_guard`]): the unlocks are sent at the point of the drop,
/// exactly as [`CriticalSection::release`] would send them there.
///
/// Deterministic: the guard is dropped at the same point of the orchestrator's code on
/// every replay. The drops that are not the orchestrator's own do nothing: when the
/// replay engine discards the orchestrator (at the end of every step, on a failure, after
/// continue-as-new) or while a panic unwinds; the section is then still held, or left
/// by the orchestration's end as before. Dropping a guard whose section was already left
/// (released, or the orchestration ended) does nothing either.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
///
/// async fn bump_both(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
///     let a = EntityInstanceId::new("counter", "a")?;
///     let b = EntityInstanceId::new("counter", "b")?;
///     {
///         let _locks = ctx.lock_entities(&[a.clone(), b.clone()]).await?.into_guard();
///         ctx.call_entity::<_, i64>(&a, "add", 1).await?;
///         ctx.call_entity::<_, i64>(&b, "add", 1).await?;
///     } // left here
///     // Outside the section: signals to the entities are allowed again.
///     ctx.signal_entity(&a, "add", 1)?;
///     Ok(())
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("bump_both", bump_both);
/// ```
#[must_use = "the section is left as soon as the guard is dropped; bind it to a name"]
pub struct CriticalSectionGuard {
    section: CriticalSection,
}

impl CriticalSectionGuard {
    /// The lock request's `criticalSectionId`, as [`CriticalSection::id`].
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn traced(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     let counter = EntityInstanceId::new("counter", "a")?;
    ///     let locks = ctx.lock_entities(&[counter]).await?.into_guard();
    ///     tracing::debug!(section = locks.id(), "locked");
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("traced", traced);
    /// ```
    pub fn id(&self) -> &str {
        self.section.id()
    }

    /// The locked entities, as [`CriticalSection::locked_entities`].
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn count(ctx: OrchestrationContext, _input: ()) -> Result<usize, Error> {
    ///     let ids = [EntityInstanceId::new("counter", "a")?, EntityInstanceId::new("counter", "a")?];
    ///     let locks = ctx.lock_entities(&ids).await?.into_guard();
    ///     Ok(locks.locked_entities().len()) // 1: duplicates are locked once
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("count", count);
    /// ```
    pub fn locked_entities(&self) -> &[EntityInstanceId] {
        self.section.locked_entities()
    }

    /// Leaves the section now, before the end of the scope (the same as dropping the
    /// guard, spelled out).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn reset(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     let a = EntityInstanceId::new("counter", "a")?;
    ///     let locks = ctx.lock_entities(&[a.clone()]).await?.into_guard();
    ///     ctx.call_entity::<_, i64>(&a, "reset", ()).await?;
    ///     locks.release();
    ///     ctx.signal_entity(&a, "add", 1)?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("reset", reset);
    /// ```
    pub fn release(self) {
        // Dropping is leaving.
        drop(self);
    }
}

impl Drop for CriticalSectionGuard {
    fn drop(&mut self) {
        // A panic is unwinding: the engine fails the orchestration, which leaves the
        // section the same way; touching the state mid-unwind gains nothing.
        if std::thread::panicking() {
            return;
        }
        let discarding = self
            .section
            .state
            .upgrade()
            .is_none_or(|state| state.try_borrow().map_or(true, |state| state.discarding));
        if !discarding {
            self.section.leave();
        }
    }
}

impl std::fmt::Debug for CriticalSectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CriticalSectionGuard")
            .field(&self.section)
            .finish()
    }
}

impl std::fmt::Debug for CriticalSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriticalSection")
            .field("id", &self.id)
            .field("locked_entities", &self.lock_set)
            .finish()
    }
}
