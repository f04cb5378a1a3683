//! Entities as the protocol carries them: the `@name@key` address
//! ([`EntityInstanceId`]) and an entity work item in either of its two shapes
//! ([`EntityWorkItem`]), flattened into one [`EntityBatch`] for whoever answers it.

mod id;
mod work_item;

pub use id::{EntityInstanceId, InvalidEntityId};
pub use work_item::{EntityBatch, EntityWorkItem, InvalidEntityWorkItem};
