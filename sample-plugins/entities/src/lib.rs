//! # The `entities` sample plugin
//!
//! Durable entities, to copy from. An entity is a small piece of durable state with a
//! name and a key (`@account@alice`), changed only by the operations sent to it, one at a
//! time. Nothing else can touch its state, so an entity needs no locks of its own; and a
//! failed operation changes nothing.
//!
//! The plugin shows:
//!
//! - the two ways to write an entity: [`counter`](counter::counter), a **function entity**
//!   that dispatches each operation by name to a handler with its own input type, and
//!   [`Account`], a **class entity** whose methods are its operations;
//! - the two ways an orchestration talks to one: **signals**, one-way messages with
//!   nothing to await ([`count_to`]), and **calls**, which wait for the operation's result
//!   or its failure ([`call_counter`], [`withdraw`]);
//! - handling an entity's typed failure: [`withdraw`] turns an `InsufficientFunds` refusal
//!   into a result and lets any other failure fail the orchestration;
//! - **critical sections**: [`transfer`] locks two accounts, checks the balance and moves
//!   the money while no other critical section can reach either account, and
//!   [`total_balance`] locks every account it sums, so its total is a consistent snapshot
//!   even while transfers run.
//!
//! Build it with `cargo build -p entities-plugin`, copy `target/debug/libentities.so` into
//! the host's plugins directory (`scripts/run-sample` does both), and try:
//!
//! ```text
//! durabletask-host client start open_accounts --input '[{"key":"alice","amount":100}]' --wait
//! durabletask-host client start transfer --input '{"from":"alice","to":"bob","amount":10}' --wait
//! durabletask-host client start total_balance --input '["alice","bob"]' --wait
//! ```
//!
//! Each orchestration refuses a bad request before it changes anything. A client can also
//! reach an entity without one: `client signal-entity @counter@visits add --input 1`
//! sends a one-way operation, and `client get-entity @account@alice` reads the state. Such
//! a signal takes no lock, and whether it waits for a critical section holding the entity
//! depends on the backend (Microsoft's in-memory backend lets it through). Locks exclude
//! only other critical sections, so a change that must not land in the middle of a
//! transfer goes through an orchestration that locks, as [`transfer`] does.

#![warn(missing_docs)]

pub mod account;
pub mod bank;
pub mod counter;

use durabletask_sdk::{Error, error_types};

use account::Account;
use bank::{open_accounts, total_balance, transfer, withdraw};
use counter::{call_counter, count_to, counter};

/// The failure of an orchestration started with an input it cannot work with. (A bad
/// entity key needs no help: `?` on `EntityInstanceId::new` already fails with
/// `InvalidInput` and a message naming the key.)
fn invalid_input(message: impl Into<String>) -> Error {
    Error::new(error_types::INVALID_INPUT, message)
}

// The host discovers the plugin's entities and orchestrations through this one export.
// Each is registered under its own name: clients start `transfer`, ids address
// `@counter@<key>` (the function) and `@account@<key>` (the class, `Account`, lowercased).
durabletask_sdk::export_plugin! {
    name: "entities",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [
        call_counter,
        count_to,
        open_accounts,
        withdraw,
        transfer,
        total_balance,
    ],
    activities: [],
    entities: [counter],
    entity_classes: [Account],
}

#[cfg(test)]
mod tests {
    //! The entities and orchestrations run whole, in process, with the SDK's test kit:
    //! real entity batches, real critical sections, no backend.
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use durabletask_sdk::testing::TestRuntime;
    use durabletask_sdk::{EntityInstanceId, error_types};
    use serde::Serialize;

    use crate::account::{ACCOUNT, Account, INSUFFICIENT_FUNDS};
    use crate::bank::TransferResult;
    use crate::counter::COUNTER;

    #[derive(Serialize)]
    struct Opening {
        key: &'static str,
        amount: i64,
    }

    #[derive(Serialize)]
    struct Transfer {
        from: &'static str,
        to: &'static str,
        amount: i64,
    }

    #[derive(Serialize)]
    struct CountTo {
        key: &'static str,
        times: u32,
    }

    fn runtime() -> TestRuntime {
        TestRuntime::new(durabletask_sdk::plugin_registry!())
    }

    fn balance(runtime: &TestRuntime, key: &str) -> i64 {
        let account = EntityInstanceId::new(ACCOUNT, key).unwrap();
        let state: Option<Account> = runtime.entity_state(&account).unwrap();
        state.unwrap_or_default().balance().unwrap()
    }

    #[test]
    fn count_to_signals_the_counter_then_reads_it() {
        let mut runtime = runtime();
        let visits = EntityInstanceId::new(COUNTER, "visits").unwrap();
        runtime.signal_entity(&visits, "add", 10).unwrap();
        let id = runtime
            .start(
                "count_to",
                CountTo {
                    key: "visits",
                    times: 3,
                },
            )
            .unwrap();
        assert_eq!(runtime.output::<i64>(&id).unwrap(), 13);
        assert_eq!(runtime.entity_state::<i64>(&visits).unwrap(), Some(13));
    }

    #[test]
    fn an_unknown_counter_operation_fails_the_caller_with_the_entitys_failure() {
        let mut runtime = runtime();
        #[derive(Serialize)]
        struct Call {
            key: &'static str,
            operation: &'static str,
            amount: Option<i64>,
        }
        let call = Call {
            key: "k",
            operation: "multiply",
            amount: Some(2),
        };
        let id = runtime.start("call_counter", call).unwrap();
        let failure = runtime.failure(&id).unwrap();
        assert_eq!(failure.error_type, error_types::TASK_FAILED);
        assert!(
            failure
                .inner
                .unwrap()
                .message
                .contains("no operation 'multiply'")
        );
    }

    #[test]
    fn a_transfer_moves_money_under_locks_and_refuses_what_is_not_there() {
        let mut runtime = runtime();
        let openings = [
            Opening {
                key: "alice",
                amount: 100,
            },
            Opening {
                key: "bob",
                amount: 5,
            },
        ];
        let opened = runtime.start("open_accounts", openings).unwrap();
        assert_eq!(
            runtime.output::<BTreeMap<String, i64>>(&opened).unwrap(),
            BTreeMap::from([("alice".to_owned(), 100), ("bob".to_owned(), 5)])
        );

        // Two transfers at once: the locks make them run one after the other.
        let first = runtime
            .start(
                "transfer",
                Transfer {
                    from: "alice",
                    to: "bob",
                    amount: 30,
                },
            )
            .unwrap();
        let second = runtime
            .start(
                "transfer",
                Transfer {
                    from: "alice",
                    to: "bob",
                    amount: 500,
                },
            )
            .unwrap();
        let done = runtime.output::<TransferResult>(&first).unwrap();
        assert!(done.transferred);
        assert_eq!((done.from_balance, done.to_balance), (70, 35));
        let refused = runtime.output::<TransferResult>(&second).unwrap();
        assert!(!refused.transferred);
        assert_eq!((refused.from_balance, refused.to_balance), (70, 35));
        assert_eq!(refused.reason.unwrap().error_type, INSUFFICIENT_FUNDS);

        assert_eq!(
            (balance(&runtime, "alice"), balance(&runtime, "bob")),
            (70, 35)
        );
        let total = runtime.start("total_balance", ["alice", "bob"]).unwrap();
        assert_eq!(runtime.output::<i64>(&total).unwrap(), 105);
    }
}
