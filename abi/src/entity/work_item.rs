//! An entity work item in either of the protocol's shapes, and the one conversion that
//! makes both a flat batch of operations.

use durabletask_proto as proto;
use prost::Message;
use proto::history_event::EventType;

use crate::module::{ENTITY_BATCH_V1, ENTITY_BATCH_V2};

/// An entity work item in either of its two shapes: what the host receives, hands a
/// plugin ([`PluginModule::run_entity_batch`](crate::PluginModule::run_entity_batch)) and
/// what the SDK's batch runner takes.
///
/// # Examples
///
/// ```
/// use durabletask_abi::entity::EntityWorkItem;
/// use durabletask_proto as proto;
///
/// let v1: EntityWorkItem = proto::EntityBatchRequest::default().into();
/// let v2: EntityWorkItem = proto::EntityRequest::default().into();
/// assert!(matches!(v1, EntityWorkItem::V1(_)));
/// assert!(matches!(v2, EntityWorkItem::V2(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum EntityWorkItem {
    /// `entityRequest`: a batch of `OperationRequest`s. Answered without `operationInfos`.
    V1(proto::EntityBatchRequest),
    /// `entityRequestV2`: a batch of `entityOperationSignaled` / `entityOperationCalled`
    /// history events (other events are ignored). Answered with one `OperationInfo` per
    /// result, naming where a call's response goes.
    V2(proto::EntityRequest),
}

impl From<proto::EntityBatchRequest> for EntityWorkItem {
    fn from(request: proto::EntityBatchRequest) -> Self {
        Self::V1(request)
    }
}

impl From<proto::EntityRequest> for EntityWorkItem {
    fn from(request: proto::EntityRequest) -> Self {
        Self::V2(request)
    }
}

/// Why the bytes handed to
/// [`PluginModule::run_entity_batch`](crate::PluginModule::run_entity_batch) are not an
/// entity work item.
#[derive(Debug, thiserror::Error)]
pub enum InvalidEntityWorkItem {
    /// `shape` is neither [`ENTITY_BATCH_V1`] nor [`ENTITY_BATCH_V2`].
    #[error("an entity batch of unknown shape {0}")]
    UnknownShape(u8),
    /// The bytes do not decode as the message `shape` names.
    #[error("an entity request that does not decode: {0}")]
    Malformed(#[from] prost::DecodeError),
}

impl EntityWorkItem {
    /// The entity's instance id, `@name@key`, as the request carries it (unchecked).
    pub fn instance_id(&self) -> &str {
        match self {
            Self::V1(request) => &request.instance_id,
            Self::V2(request) => &request.instance_id,
        }
    }

    /// How the item crosses the ABI: its shape ([`ENTITY_BATCH_V1`] or
    /// [`ENTITY_BATCH_V2`]) and its encoded request.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_abi::entity::EntityWorkItem;
    /// use durabletask_proto as proto;
    ///
    /// let item = EntityWorkItem::V2(proto::EntityRequest {
    ///     instance_id: "@counter@k".into(),
    ///     ..Default::default()
    /// });
    /// let (shape, bytes) = item.encode();
    /// assert_eq!(EntityWorkItem::decode(shape, &bytes)?, item);
    /// assert!(EntityWorkItem::decode(7, &bytes).is_err());
    /// # Ok::<(), durabletask_abi::entity::InvalidEntityWorkItem>(())
    /// ```
    pub fn encode(&self) -> (u8, Vec<u8>) {
        match self {
            Self::V1(request) => (ENTITY_BATCH_V1, request.encode_to_vec()),
            Self::V2(request) => (ENTITY_BATCH_V2, request.encode_to_vec()),
        }
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub fn decode(shape: u8, bytes: &[u8]) -> Result<Self, InvalidEntityWorkItem> {
        match shape {
            ENTITY_BATCH_V1 => Ok(Self::V1(proto::EntityBatchRequest::decode(bytes)?)),
            ENTITY_BATCH_V2 => Ok(Self::V2(proto::EntityRequest::decode(bytes)?)),
            other => Err(InvalidEntityWorkItem::UnknownShape(other)),
        }
    }
}

/// An entity work item of either shape as one list of operations: what runs them, or
/// fails them all, answers from this.
///
/// # Examples
///
/// ```
/// use durabletask_abi::entity::{EntityBatch, EntityWorkItem};
/// use durabletask_proto::{self as proto, history_event::EventType};
///
/// let signal = proto::HistoryEvent {
///     event_type: Some(EventType::EntityOperationSignaled(proto::EntityOperationSignaledEvent {
///         request_id: "r1".into(),
///         operation: "add".into(),
///         ..Default::default()
///     })),
///     ..Default::default()
/// };
/// let batch = EntityBatch::from(EntityWorkItem::V2(proto::EntityRequest {
///     instance_id: "@counter@k".into(),
///     operation_requests: vec![signal],
///     ..Default::default()
/// }));
/// assert_eq!(batch.operations[0].operation, "add");
/// assert_eq!(batch.infos.map(|infos| infos[0].request_id.clone()), Some("r1".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityBatch {
    /// The entity's instance id, `@name@key`, as the request carries it (unchecked).
    pub instance_id: String,
    /// The entity's state before the batch.
    pub state: Option<String>,
    /// The operations, in order.
    pub operations: Vec<proto::OperationRequest>,
    /// For [`EntityWorkItem::V2`], the `OperationInfo` of each operation (where a call's
    /// response goes), to answer with aligned with the results; `None` for
    /// [`EntityWorkItem::V1`], answered without them.
    pub infos: Option<Vec<proto::OperationInfo>>,
}

impl From<EntityWorkItem> for EntityBatch {
    fn from(item: EntityWorkItem) -> Self {
        match item {
            EntityWorkItem::V1(request) => Self {
                instance_id: request.instance_id,
                state: request.entity_state,
                operations: request.operations,
                infos: None,
            },
            EntityWorkItem::V2(request) => {
                let mut operations = Vec::new();
                let mut infos = Vec::new();
                for event in request.operation_requests {
                    match event.event_type {
                        Some(EventType::EntityOperationSignaled(signal)) => {
                            infos.push(proto::OperationInfo {
                                request_id: signal.request_id.clone(),
                                response_destination: None,
                            });
                            operations.push(proto::OperationRequest {
                                operation: signal.operation,
                                request_id: signal.request_id,
                                input: signal.input,
                                trace_context: None,
                            });
                        }
                        Some(EventType::EntityOperationCalled(call)) => {
                            infos.push(proto::OperationInfo {
                                request_id: call.request_id.clone(),
                                response_destination: Some(proto::OrchestrationInstance {
                                    instance_id: call.parent_instance_id.unwrap_or_default(),
                                    execution_id: call.parent_execution_id,
                                }),
                            });
                            operations.push(proto::OperationRequest {
                                operation: call.operation,
                                request_id: call.request_id,
                                input: call.input,
                                trace_context: None,
                            });
                        }
                        // Lock and unlock messages are the backend's business.
                        _ => {}
                    }
                }
                Self {
                    instance_id: request.instance_id,
                    state: request.entity_state,
                    operations,
                    infos: Some(infos),
                }
            }
        }
    }
}
