//! Orchestrations over [`Account`](crate::account::Account)s: opening accounts, a
//! withdrawal that may be refused, a transfer inside a critical section, and an audit.

use std::collections::{BTreeMap, BTreeSet};

use durabletask_sdk::orchestration::{join, when_all};
use durabletask_sdk::{EntityInstanceId, Error, FailureDetails, OrchestrationContext};
use serde::{Deserialize, Serialize};

use crate::account::{ACCOUNT, INSUFFICIENT_FUNDS, insufficient_funds};
use crate::invalid_input;

/// The most accounts one [`open_accounts`] or [`total_balance`] takes. Each account adds
/// a few events to the orchestration's history (a call and its result, a lock and an
/// unlock), and backends cap history length (the reference backend at 10,000 events).
pub const MAX_ACCOUNTS: usize = 1_000;

/// Why an account refused an operation, as the account reported it:
/// `{"error_type": "InsufficientFunds", "message": "account 'alice' holds 5, ..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The failure's errorType, e.g. [`INSUFFICIENT_FUNDS`].
    pub error_type: String,
    /// The failure's message.
    pub message: String,
}

impl From<FailureDetails> for Refusal {
    fn from(details: FailureDetails) -> Self {
        Self {
            error_type: details.error_type,
            message: details.message,
        }
    }
}

/// One line of [`open_accounts`]' input: `{"key": "alice", "amount": 100}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opening {
    /// The account's key.
    pub key: String,
    /// The first deposit; positive.
    pub amount: i64,
}

/// Orchestrator: deposits each opening amount into its account, all at once, and returns
/// the balances afterwards by key: `{"alice": 100, "bob": 50}`. An account that already
/// exists gets the amount added to its balance.
///
/// The whole input is checked before anything is sent (keys valid and distinct, amounts
/// positive), so a bad line refuses the request instead of opening only some accounts.
pub async fn open_accounts(
    ctx: OrchestrationContext,
    openings: Vec<Opening>,
) -> Result<BTreeMap<String, i64>, Error> {
    if openings.len() > MAX_ACCOUNTS {
        return Err(invalid_input(format!(
            "at most {MAX_ACCOUNTS} accounts at once, got {}",
            openings.len()
        )));
    }
    let mut deposits = BTreeMap::new();
    for Opening { key, amount } in openings {
        if amount <= 0 {
            return Err(invalid_input(format!(
                "account '{key}': the opening amount must be positive, got {amount}"
            )));
        }
        let account = EntityInstanceId::new(ACCOUNT, &key)?;
        if deposits.insert(key.clone(), (account, amount)).is_some() {
            return Err(invalid_input(format!("account '{key}' is listed twice")));
        }
    }
    // Each deposit is a single operation on a single account, atomic on its own, and
    // adding money cannot break a transfer's balance check: no lock is needed. All the
    // calls are sent before any is awaited, so they run in parallel.
    let calls = deposits
        .values()
        .map(|(account, amount)| ctx.call_entity::<_, i64>(account, "deposit", amount))
        .collect();
    let balances = when_all(calls).await?;
    Ok(deposits.into_keys().zip(balances).collect())
}

/// The input of [`withdraw`]: `{"account": "alice", "amount": 30}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    /// The account's key.
    pub account: String,
    /// The amount to take; positive.
    pub amount: i64,
}

/// What [`withdraw`] returns: `{"withdrawn": true, "balance": 70}`, or
/// `{"withdrawn": false, "balance": 20, "reason": {"error_type": "InsufficientFunds", ..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawResult {
    /// Whether the money was taken.
    pub withdrawn: bool,
    /// The account's balance afterwards.
    pub balance: i64,
    /// Why the withdrawal was refused; absent when it went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Refusal>,
}

/// Orchestrator: takes an amount from an account. Insufficient funds are an expected
/// outcome, reported in the result; any other failure (an amount of zero or less) fails
/// the orchestration.
///
/// A single operation on a single entity needs no lock for itself: the entity runs its
/// operations one at a time, and its own balance check and the withdrawal are one
/// operation. It does not lock, though, so on a backend that lets plain calls reach a
/// locked entity (Microsoft's in-memory backend does) it can take money between a
/// [`transfer`]'s balance check and its withdrawal; that transfer then fails and moves
/// nothing. Lock the account here too if transfers must never fail that way: locks
/// exclude only other critical sections.
pub async fn withdraw(
    ctx: OrchestrationContext,
    withdrawal: Withdrawal,
) -> Result<WithdrawResult, Error> {
    let account = EntityInstanceId::new(ACCOUNT, withdrawal.account)?;
    match ctx
        .call_entity::<_, i64>(&account, "withdraw", withdrawal.amount)
        .await
    {
        Ok(balance) => Ok(WithdrawResult {
            withdrawn: true,
            balance,
            reason: None,
        }),
        // The failure's details are the entity's own: its errorType tells the expected
        // refusal from real errors. The refused operation changed nothing.
        Err(failed) if failed.details.error_type == INSUFFICIENT_FUNDS => {
            let balance = ctx.call_entity(&account, "balance", ()).await?;
            Ok(WithdrawResult {
                withdrawn: false,
                balance,
                reason: Some(failed.details.into()),
            })
        }
        // errorType `TaskFailed`, with the entity's failure as the inner failure.
        Err(failed) => Err(failed.into()),
    }
}

/// The input of [`transfer`]: `{"from": "alice", "to": "bob", "amount": 10}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// The key of the account the money leaves.
    pub from: String,
    /// The key of the account the money goes to; not `from`.
    pub to: String,
    /// The amount to move; positive.
    pub amount: i64,
}

/// What [`transfer`] returns: `{"transferred": true, "from_balance": 90, "to_balance": 10}`,
/// or `{"transferred": false, "from_balance": 5, "to_balance": 0, "reason": {..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferResult {
    /// Whether the money moved.
    pub transferred: bool,
    /// The source account's balance afterwards.
    pub from_balance: i64,
    /// The destination account's balance afterwards.
    pub to_balance: i64,
    /// Why the transfer was refused; absent when it went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Refusal>,
}

impl TransferResult {
    /// A refused transfer: the balances are as they were.
    fn refused(from_balance: i64, to_balance: i64, reason: FailureDetails) -> Self {
        Self {
            transferred: false,
            from_balance,
            to_balance,
            reason: Some(reason.into()),
        }
    }
}

/// Orchestrator: moves an amount from one account to another, or, when the source holds
/// less than the amount, moves nothing and says why. Both ways it completes; an invalid
/// request (the same account twice, an amount of zero or less, a bad key) fails.
///
/// The two accounts are locked for the whole transfer (a critical section): from the
/// balance check to the deposit, no other critical section can reach either account, so
/// another transfer cannot spend the balance just read, and an audit cannot see the money
/// gone from one account and not yet in the other.
///
/// Locks exclude other critical sections only. Whether a plain call or signal from an
/// orchestration that did not lock, or from a client, waits for the lock depends on the
/// backend (Microsoft's in-memory backend lets it through), so every orchestration that
/// must not interleave with transfers locks too, as [`total_balance`] does.
pub async fn transfer(
    ctx: OrchestrationContext,
    transfer: Transfer,
) -> Result<TransferResult, Error> {
    let Transfer { from, to, amount } = transfer;
    if amount <= 0 {
        return Err(invalid_input(format!(
            "the amount to transfer must be positive, got {amount}"
        )));
    }
    if from == to {
        return Err(invalid_input(format!(
            "cannot transfer from account '{from}' to itself"
        )));
    }
    let from = EntityInstanceId::new(ACCOUNT, from)?;
    let to = EntityInstanceId::new(ACCOUNT, to)?;

    // `lock_entities` sorts the ids, so all orchestrations take locks in one order and
    // two opposite transfers cannot deadlock.
    // The section is left when `_locks` goes out of scope: at every `return` below, and
    // at a failed `?`.
    let _locks = ctx
        .lock_entities(&[from.clone(), to.clone()])
        .await?
        .into_guard();
    // Both calls run in parallel: a critical section allows one call at a time per
    // locked entity, and these are two entities.
    let (from_balance, to_balance) = join((
        ctx.call_entity::<_, i64>(&from, "balance", ()),
        ctx.call_entity::<_, i64>(&to, "balance", ()),
    ))
    .await?;
    if from_balance < amount {
        let refusal = insufficient_funds(&from, from_balance, amount);
        return Ok(TransferResult::refused(
            from_balance,
            to_balance,
            refusal.into_details(),
        ));
    }

    // The balance was checked under the lock, so the withdrawal should go through. If it
    // fails anyway (an unlocked `withdraw` got in first, on a backend that lets it),
    // nothing has moved yet: `?` leaves the section and fails the orchestration.
    let from_after: i64 = ctx.call_entity(&from, "withdraw", amount).await?;
    let to_after = match ctx.call_entity::<_, i64>(&to, "deposit", amount).await {
        Ok(balance) => balance,
        Err(failed) => {
            // The destination refused the money (its balance would overflow): give it
            // back before leaving the section, so a refused transfer moves nothing.
            ctx.call_entity::<_, i64>(&from, "deposit", amount).await?;
            return Ok(TransferResult::refused(
                from_balance,
                to_balance,
                failed.details,
            ));
        }
    };
    Ok(TransferResult {
        transferred: true,
        from_balance: from_after,
        to_balance: to_after,
        reason: None,
    })
}

/// Orchestrator: the sum of the balances of the given accounts (each counted once; an
/// account that does not exist holds 0).
///
/// The accounts are locked while they are read, so the total is a snapshot: a
/// [`transfer`] holds its locks from before the withdrawal to after the deposit, so none
/// can be half-done while the balances are read, and the total is exact even while
/// transfers run.
pub async fn total_balance(ctx: OrchestrationContext, keys: Vec<String>) -> Result<i64, Error> {
    if keys.len() > MAX_ACCOUNTS {
        return Err(invalid_input(format!(
            "at most {MAX_ACCOUNTS} accounts at once, got {}",
            keys.len()
        )));
    }
    // A set: a critical section allows only one call at a time per entity, so each
    // account is read once.
    let accounts = keys
        .iter()
        .map(|key| EntityInstanceId::new(ACCOUNT, key))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if accounts.is_empty() {
        // Nothing to lock (and `lock_entities` refuses an empty list).
        return Ok(0);
    }
    let accounts: Vec<EntityInstanceId> = accounts.into_iter().collect();

    let balances = {
        let _locks = ctx.lock_entities(&accounts).await?.into_guard();
        let calls = accounts
            .iter()
            .map(|account| ctx.call_entity::<_, i64>(account, "balance", ()))
            .collect();
        when_all(calls).await?
    }; // the section is left here, before the sum
    balances
        .into_iter()
        .try_fold(0, i64::checked_add)
        .ok_or_else(|| Error::new("Overflow", "the total balance does not fit in an i64"))
}
