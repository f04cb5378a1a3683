//! The `account` class entity: a balance that never goes below zero.

use durabletask_sdk::{EntityContext, EntityInstanceId, Error};
use serde::{Deserialize, Serialize};

/// The name [`Account`] is registered under (`export_plugin!` registers a class entity
/// under its type name, lowercased): its ids are `@account@<key>`.
pub const ACCOUNT: &str = "account";

/// The errorType of a withdrawal larger than the balance.
pub const INSUFFICIENT_FUNDS: &str = "InsufficientFunds";

/// The errorType of a deposit or withdrawal of zero or less.
pub const INVALID_AMOUNT: &str = "InvalidAmount";

/// Class entity: a bank account. The struct is the entity's state, stored as JSON
/// (`{"balance": 100}`), and each method listed in [`entity_operations!`] is an operation
/// of the same name:
///
/// - `deposit` (input: a positive amount) returns the new balance;
/// - `withdraw` (input: a positive amount) returns the new balance, or fails with
///   [`INSUFFICIENT_FUNDS`] when the balance is smaller than the amount;
/// - `balance` returns the balance;
/// - `delete`, which the macro adds, deletes the account.
///
/// An account that does not exist reads as `Account::default()`, a balance of 0, and
/// comes into existence with its first deposit. A failed operation leaves the balance as
/// it was: the SDK saves the state only when the method returns `Ok`.
///
/// [`entity_operations!`]: durabletask_sdk::entity_operations!
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    /// The money in the account; never negative.
    balance: i64,
}

impl Account {
    /// Adds `amount` (positive) to the balance and returns the new balance.
    pub fn deposit(&mut self, ctx: &mut EntityContext, amount: i64) -> Result<i64, Error> {
        check_amount(ctx.entity_id(), "deposit", amount)?;
        self.balance = self.balance.checked_add(amount).ok_or_else(|| {
            Error::new(
                "Overflow",
                format!(
                    "account '{}' holds {}; a deposit of {amount} does not fit in an i64",
                    ctx.entity_id().key(),
                    self.balance
                ),
            )
        })?;
        Ok(self.balance)
    }

    /// Takes `amount` (positive) from the balance and returns the new balance; fails with
    /// [`INSUFFICIENT_FUNDS`] if the balance is smaller than `amount`.
    pub fn withdraw(&mut self, ctx: &mut EntityContext, amount: i64) -> Result<i64, Error> {
        check_amount(ctx.entity_id(), "withdrawal", amount)?;
        if self.balance < amount {
            return Err(insufficient_funds(ctx.entity_id(), self.balance, amount));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// The balance. A read-only operation (`&self`): it never changes the state.
    pub fn balance(&self) -> Result<i64, Error> {
        Ok(self.balance)
    }
}

// `Account` becomes a `DurableEntity`: an operation named `deposit` runs `Account::deposit`,
// and so on; `delete` deletes the state; any other name fails with `UnknownEntityOperation`.
durabletask_sdk::entity_operations!(Account {
    deposit,
    withdraw,
    balance
});

/// The [`INSUFFICIENT_FUNDS`] failure of taking `amount` from `account`, which holds only
/// `balance`. Public so that orchestrations refusing a transfer up front report the
/// same failure the entity would.
pub fn insufficient_funds(account: &EntityInstanceId, balance: i64, amount: i64) -> Error {
    Error::new(
        INSUFFICIENT_FUNDS,
        format!(
            "account '{}' holds {balance}, less than the {amount} requested",
            account.key()
        ),
    )
}

/// Refuses an amount of zero or less with [`INVALID_AMOUNT`]: without this check, a
/// negative deposit would be a withdrawal that skips the balance check.
fn check_amount(account: &EntityInstanceId, what: &str, amount: i64) -> Result<(), Error> {
    if amount > 0 {
        Ok(())
    } else {
        Err(Error::new(
            INVALID_AMOUNT,
            format!(
                "account '{}': a {what} must be positive, got {amount}",
                account.key()
            ),
        ))
    }
}
