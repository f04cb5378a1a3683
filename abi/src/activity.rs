//! What an `ActivityRequest` says about where it comes from: the orchestration instance
//! and execution that scheduled it (the protocol nests both in an optional message).

use durabletask_proto as proto;

/// The id of the orchestration instance that scheduled the activity ("" if absent).
///
/// # Examples
///
/// ```
/// use durabletask_proto as proto;
///
/// let request = proto::ActivityRequest {
///     orchestration_instance: Some(proto::OrchestrationInstance {
///         instance_id: "order-7".into(),
///         execution_id: Some("e1".into()),
///     }),
///     ..Default::default()
/// };
/// assert_eq!(durabletask_abi::activity::instance_id(&request), "order-7");
/// assert_eq!(durabletask_abi::activity::execution_id(&request), "e1");
/// assert_eq!(durabletask_abi::activity::instance_id(&Default::default()), "");
/// ```
pub fn instance_id(request: &proto::ActivityRequest) -> &str {
    request
        .orchestration_instance
        .as_ref()
        .map_or("", |instance| instance.instance_id.as_str())
}

/// The execution of that instance ("" if absent).
pub fn execution_id(request: &proto::ActivityRequest) -> &str {
    request
        .orchestration_instance
        .as_ref()
        .and_then(|instance| instance.execution_id.as_deref())
        .unwrap_or_default()
}
