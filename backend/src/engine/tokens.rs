//! Completion tokens: what a worker must send back to complete or abandon a work item.
//!
//! A token is `<run prefix><counter>~<mac>` (activities: `<run prefix><counter>~<execution
//! id>~<mac>`), where the MAC is an HMAC-SHA256 over the hub, the lease part and what the
//! work item is (for activities: instance, task id and execution), keyed with a secret
//! that only the database holds. So a token cannot be guessed from others a worker has
//! seen, and a forged one never completes work another worker holds.
//!
//! The key is kept in the database so that an activity result sent after a restart (its
//! lease is gone, the prefix changed) can still be checked and accepted for the
//! execution the token names.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Separates the parts of a token.
const SEPARATOR: char = '~';
/// Bytes of the MAC kept in a token (128 bits: not guessable).
const MAC_BYTES: usize = 16;

/// What an activity token binds: the activity's place in its orchestration.
pub struct ActivityBinding<'a> {
    pub instance_id: &'a str,
    pub task_id: i32,
    pub execution_id: &'a str,
}

/// Makes and checks tokens; cheap to clone (one per hub).
#[derive(Clone)]
pub struct TokenMint {
    /// Differs for each run of the engine, so a token of an earlier run never names a
    /// lease of this one.
    prefix: Arc<str>,
    key: Arc<[u8; 32]>,
}

impl TokenMint {
    pub fn new(key: [u8; 32]) -> TokenMint {
        let run = uuid::Uuid::new_v4().simple().to_string();
        TokenMint {
            prefix: Arc::from(format!("{}-", &run[..8])),
            key: Arc::new(key),
        }
    }

    /// The token of lease `counter` for an orchestration or entity work item.
    pub fn mint(&self, hub: &str, counter: u64) -> String {
        let lease = format!("{}{counter}", self.prefix);
        let mac = self.mac(hub, &lease, None);
        format!("{lease}{SEPARATOR}{mac}")
    }

    /// The token of lease `counter` for an activity, naming its execution.
    pub fn mint_activity(&self, hub: &str, counter: u64, binding: &ActivityBinding<'_>) -> String {
        let lease = format!("{}{counter}", self.prefix);
        let mac = self.mac(hub, &lease, Some(binding));
        format!("{lease}{SEPARATOR}{}{SEPARATOR}{mac}", binding.execution_id)
    }

    /// The execution an activity token names, if the token was made by this database for
    /// that instance and task id (whatever run of the engine made it).
    pub fn activity_execution<'t>(
        &self,
        hub: &str,
        token: &'t str,
        instance_id: &str,
        task_id: i32,
    ) -> Option<&'t str> {
        let (lease, rest) = token.split_once(SEPARATOR)?;
        let (execution_id, mac) = rest.rsplit_once(SEPARATOR)?;
        let binding = ActivityBinding {
            instance_id,
            task_id,
            execution_id,
        };
        let expected = self.mac(hub, lease, Some(&binding));
        constant_time_eq(expected.as_bytes(), mac.as_bytes()).then_some(execution_id)
    }

    fn mac(&self, hub: &str, lease: &str, binding: Option<&ActivityBinding<'_>>) -> String {
        // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_slice()) else {
            return String::new();
        };
        // Lengths first, so that no two different inputs feed the same bytes.
        for part in [hub, lease] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part.as_bytes());
        }
        if let Some(binding) = binding {
            for part in [binding.instance_id, binding.execution_id] {
                mac.update(&(part.len() as u64).to_le_bytes());
                mac.update(part.as_bytes());
            }
            mac.update(&binding.task_id.to_le_bytes());
        }
        let digest = mac.finalize().into_bytes();
        digest[..MAC_BYTES]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn binding<'a>(execution_id: &'a str) -> ActivityBinding<'a> {
        ActivityBinding {
            instance_id: "i",
            task_id: 3,
            execution_id,
        }
    }

    #[test]
    fn tokens_differ_by_counter_hub_and_run() {
        let mint = TokenMint::new([7; 32]);
        assert_ne!(mint.mint("h", 1), mint.mint("h", 2));
        assert_ne!(mint.mint("h", 1), mint.mint("g", 1));
        let next_run = TokenMint::new([7; 32]);
        assert_ne!(mint.mint("h", 1), next_run.mint("h", 1));
    }

    #[test]
    fn activity_tokens_are_checked_across_runs_but_not_forgeable() {
        let mint = TokenMint::new([7; 32]);
        let token = mint.mint_activity("h", 5, &binding("e1"));
        let next_run = TokenMint::new([7; 32]);
        assert_eq!(next_run.activity_execution("h", &token, "i", 3), Some("e1"));
        // Another instance, task, hub or key: refused.
        assert_eq!(next_run.activity_execution("h", &token, "j", 3), None);
        assert_eq!(next_run.activity_execution("h", &token, "i", 4), None);
        assert_eq!(next_run.activity_execution("g", &token, "i", 3), None);
        let other_key = TokenMint::new([8; 32]);
        assert_eq!(other_key.activity_execution("h", &token, "i", 3), None);
        // A forged token naming the execution.
        assert_eq!(mint.activity_execution("h", "anything~e1", "i", 3), None);
        assert_eq!(mint.activity_execution("h", "x~e1~00", "i", 3), None);
        let mac = token.rsplit_once('~').unwrap().1;
        let moved = format!("x-1~e2~{mac}");
        assert_eq!(mint.activity_execution("h", &moved, "i", 3), None);
    }

    #[test]
    fn execution_ids_may_hold_the_separator() {
        let mint = TokenMint::new([1; 32]);
        let token = mint.mint_activity("h", 1, &binding("a~b"));
        assert_eq!(mint.activity_execution("h", &token, "i", 3), Some("a~b"));
    }
}
