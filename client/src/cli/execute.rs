//! Performing a checked [`Command`]: one call of [`Client`] per verb, with the values as
//! they were converted (nothing is parsed here).

use serde_json::Value;

use super::Command;
use crate::{Client, ClientError};

impl Command {
    /// Performs the command on `client`; the JSON object to print.
    pub async fn run(self, client: &Client) -> Result<Value, ClientError> {
        match self {
            Command::Start { name, options } => client.start(&name, options).await,
            Command::Status { id } => client.status(&id).await,
            Command::Wait { id, timeout } => client.wait(&id, timeout).await,
            Command::RaiseEvent { id, name, data } => client.raise_event(&id, &name, data).await,
            Command::Suspend { id, reason } => client.suspend(&id, reason).await,
            Command::Resume { id, reason } => client.resume(&id, reason).await,
            Command::Terminate { id, output } => client.terminate(&id, output, false).await,
            Command::Purge { id } => client.purge(&id).await,
            Command::History { id } => client.history(&id).await,
            Command::Rewind { id, reason } => client.rewind(&id, reason).await,
            Command::Restart { id, new_id } => client.restart(&id, new_id).await,
            Command::List(options) => client.list(options).await,
            Command::SignalEntity {
                id,
                operation,
                options,
            } => client.signal_entity(&id, &operation, options).await,
            Command::GetEntity { id, include_state } => client.get_entity(&id, include_state).await,
            Command::ListEntities(options) => client.list_entities(options).await,
        }
    }
}
