//! The plugin side of the ABI: what [`crate::export_plugin!`] expands to calls into here.
//!
//! Every `extern "C"` entry point catches panics: since Rust 1.81 a panic that reaches an
//! `extern "C"` function aborts the whole process, host included. Activities run on a
//! runtime the plugin owns (the host's tokio is a different copy of tokio and cannot run
//! the plugin's futures) and report through the host's completion callback, so thousands
//! can be in flight without a host thread each.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RString, RVec};
use durabletask_abi::entity::EntityWorkItem;
use durabletask_abi::failure;
use durabletask_proto as proto;
use futures::FutureExt;
use prost::Message;
use std::future::Future as _;

use crate::abi::{HostCallbacks, PluginDescription, PluginModule, PluginModuleRef};
use crate::error::{FailureDetails, error_types};
use crate::registry::Registry;

/// The symbol abi_stable looks up to find a library's root module. `export_plugin!` must
/// spell it as a literal (`export_name` takes no constant); a unit test checks the two
/// agree.
pub const ROOT_MODULE_LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// What `export_plugin!` knows about the plugin: its identity and how to register its
/// functions. Registration runs in [`PluginModule::init`], after the host's checks.
#[derive(Debug)]
pub struct PluginDefinition {
    /// The plugin's name.
    pub name: &'static str,
    /// The plugin's version.
    pub version: &'static str,
    /// Registers the plugin's orchestrators and activities.
    pub register: fn(&mut Registry),
}

pub use abi_stable::library::{LibHeader as RootModuleHeader, RootModuleResult as RootResult};

/// Builds the abi_stable library header for `export_plugin!`'s exported static.
pub const fn lib_header(loader: extern "C" fn() -> RootModuleResult) -> LibHeader {
    // SAFETY: `loader` is the function `export_plugin!` generates, which returns
    // `root_module_loader(..)`: abi_stable's `__call_root_module_loader` erasing a
    // `PluginModuleRef`, exactly the type named here.
    unsafe { LibHeader::from_constructor::<PluginModuleRef>(loader, CheckTypeLayout::Yes) }
}

static DEFINITION: OnceLock<&'static PluginDefinition> = OnceLock::new();

/// Called by the generated root-module loader: remembers the definition and hands
/// abi_stable the function table.
pub fn root_module_loader(definition: &'static PluginDefinition) -> RootModuleResult {
    let _ = DEFINITION.set(definition);
    __call_root_module_loader(module)
}

fn module() -> PluginModuleRef {
    PluginModule {
        init,
        run_orchestrator,
        start_activity,
        run_entity_batch,
        shutdown,
    }
    .leak_into_prefix()
}

/// Everything the plugin needs after `init`.
struct PluginState {
    host: HostCallbacks,
    registry: Registry,
}

static STATE: OnceLock<PluginState> = OnceLock::new();

/// The plugin's own runtime for activities, built on first use, dropped at shutdown.
static RUNTIME: Mutex<Option<tokio::runtime::Runtime>> = Mutex::new(None);

extern "C" fn init(host: HostCallbacks) -> RResult<PluginDescription, RString> {
    match catch_unwind(|| init_inner(host)) {
        Ok(Ok(description)) => ROk(description),
        Ok(Err(message)) => RErr(RString::from(message)),
        Err(panic) => RErr(RString::from(format!(
            "the plugin panicked while registering its functions: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

fn init_inner(host: HostCallbacks) -> Result<PluginDescription, String> {
    let Some(definition) = DEFINITION.get() else {
        return Err("the plugin's root module was not loaded before init".to_owned());
    };
    crate::host_log::install(host);
    let mut registry = Registry::new();
    (definition.register)(&mut registry);
    let description = PluginDescription {
        name: definition.name.into(),
        version: definition.version.into(),
        sdk_version: env!("CARGO_PKG_VERSION").into(),
        orchestrators: registry
            .orchestrator_names()
            .into_iter()
            .map(RString::from)
            .collect(),
        activities: registry
            .activity_names()
            .into_iter()
            .map(RString::from)
            .collect(),
        entities: registry
            .entity_names()
            .into_iter()
            .map(RString::from)
            .collect(),
    };
    if STATE.set(PluginState { host, registry }).is_err() {
        return Err("the plugin was initialised twice".to_owned());
    }
    Ok(description)
}

extern "C" fn run_orchestrator(request: RSlice<'_, u8>) -> RVec<u8> {
    let response = match catch_unwind(AssertUnwindSafe(|| orchestrate(request.as_slice()))) {
        Ok(response) => response,
        Err(panic) => failed_orchestration(None, panic_failure(panic.as_ref())),
    };
    RVec::from(response.encode_to_vec())
}

fn orchestrate(bytes: &[u8]) -> proto::OrchestratorResponse {
    let request = match proto::OrchestratorRequest::decode(bytes) {
        Ok(request) => request,
        Err(error) => {
            return failed_orchestration(
                None,
                FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!("the host sent an OrchestratorRequest that does not decode: {error}"),
                ),
            );
        }
    };
    match STATE.get() {
        Some(state) => state.registry.run_orchestrator(&request),
        None => failed_orchestration(
            Some(request.instance_id),
            FailureDetails::new(
                error_types::PLUGIN_PANIC,
                "the plugin was called before it was initialised",
            ),
        ),
    }
}

/// A response that fails the orchestration. Used only when the engine itself could not
/// run (it fails orchestrations on its own otherwise), hence the action id of that case.
fn failed_orchestration(
    instance_id: Option<String>,
    details: FailureDetails,
) -> proto::OrchestratorResponse {
    failure::orchestration(
        instance_id.unwrap_or_default(),
        failure::REQUEST_FAILED_ACTION_ID,
        details.to_proto(),
    )
}

extern "C" fn run_entity_batch(shape: u8, request: RSlice<'_, u8>) -> RVec<u8> {
    let result = catch_unwind(AssertUnwindSafe(|| entity_batch(shape, request.as_slice())))
        .unwrap_or_else(|panic| failed_entity_batch(panic_failure(panic.as_ref())));
    RVec::from(result.encode_to_vec())
}

fn entity_batch(shape: u8, bytes: &[u8]) -> proto::EntityBatchResult {
    match (EntityWorkItem::decode(shape, bytes), STATE.get()) {
        (Ok(work), Some(state)) => state.registry.run_entity_batch(work),
        (Err(error), _) => failed_entity_batch(FailureDetails::new(
            error_types::INVALID_INPUT,
            format!("the host sent {error}"),
        )),
        (Ok(_), None) => failed_entity_batch(FailureDetails::new(
            error_types::PLUGIN_PANIC,
            "the plugin was called before it was initialised",
        )),
    }
}

/// A batch the SDK could not run at all (the batch runner fails operations one by one
/// on its own otherwise).
fn failed_entity_batch(details: FailureDetails) -> proto::EntityBatchResult {
    failure::entity_batch(details.to_proto())
}

extern "C" fn start_activity(request: RSlice<'_, u8>, token: u64) {
    // Nothing in here may unwind into the host; the guard reports a failure if anything
    // goes wrong before the activity's own future takes over.
    let bytes = request.as_slice().to_vec();
    let started = catch_unwind(AssertUnwindSafe(|| spawn_activity(bytes, token)));
    if let (Err(panic), Some(state)) = (started, STATE.get()) {
        CompletionGuard::new(state.host, token, String::new(), 0)
            .complete_with_failure(panic_failure(panic.as_ref()));
    }
}

fn spawn_activity(bytes: Vec<u8>, token: u64) {
    let Some(state) = STATE.get() else {
        return;
    };
    let request = match proto::ActivityRequest::decode(bytes.as_slice()) {
        Ok(request) => request,
        Err(error) => {
            CompletionGuard::new(state.host, token, String::new(), 0).complete_with_failure(
                FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!("the host sent an ActivityRequest that does not decode: {error}"),
                ),
            );
            return;
        }
    };
    let instance_id = request
        .orchestration_instance
        .as_ref()
        .map(|instance| instance.instance_id.clone())
        .unwrap_or_default();
    let guard = CompletionGuard::new(state.host, token, instance_id, request.task_id);
    let future = AssertUnwindSafe(state.registry.run_activity(request)).catch_unwind();
    let task = async move {
        let mut guard = guard;
        match future.await {
            Ok(response) => guard.complete(response),
            Err(panic) => {
                let mut details =
                    FailureDetails::new(error_types::PLUGIN_PANIC, panic_message(panic.as_ref()));
                // Taken on the thread that panicked, symbolised on the runtime's blocking
                // pool: this may be the first poll, which runs on the host's thread, and
                // the first symbolisation in a process takes 100-200 ms (panic_trace).
                if let Some(trace) = crate::panic_trace::take_unresolved() {
                    details.stack_trace = tokio::task::spawn_blocking(move || trace.resolve())
                        .await
                        .ok();
                }
                guard.complete_with_failure(details);
            }
        }
    };
    match runtime_handle() {
        Ok(handle) => {
            // Most activities finish without ever waiting (a computation, a cached
            // answer): poll once right here, inside the plugin runtime's context so
            // timers and I/O register with it, and skip two thread hand-offs. Only an
            // activity that really waits moves to the runtime, whose first poll
            // registers the real waker.
            let mut task = Box::pin(task);
            let waker = futures::task::noop_waker();
            let mut context = std::task::Context::from_waker(&waker);
            let entered = handle.enter();
            let first_poll = task.as_mut().poll(&mut context);
            drop(entered);
            if first_poll.is_pending() {
                handle.spawn(task);
            }
        }
        Err(message) => {
            // Dropping the task drops its guard, which reports the failure.
            tracing::error!("{message}");
            drop(task);
        }
    }
}

fn runtime_handle() -> Result<tokio::runtime::Handle, String> {
    let mut runtime = RUNTIME
        .lock()
        .map_err(|_| "the plugin's runtime lock is poisoned".to_owned())?;
    if runtime.is_none() {
        let name = DEFINITION
            .get()
            .map_or("plugin", |definition| definition.name);
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(activity_threads())
            .thread_name(format!("{name}-activity"))
            .enable_all()
            .build()
            .map_err(|error| format!("could not start the plugin's activity runtime: {error}"))?;
        *runtime = Some(built);
    }
    runtime
        .as_ref()
        .map(|runtime| runtime.handle().clone())
        .ok_or_else(|| "the plugin's activity runtime is not running".to_owned())
}

/// Activity threads per plugin: `DURABLETASK_ACTIVITY_THREADS`, else one per core, at
/// most two. Activities are expected to be I/O-bound; async activities multiplex on
/// these threads by the thousand.
fn activity_threads() -> usize {
    std::env::var("DURABLETASK_ACTIVITY_THREADS")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|threads| *threads > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(2)
        })
}

/// The plugin's half of the log-fields extension (see [`crate::abi::LogFieldsExport`]).
pub extern "C" fn enable_log_fields(log: crate::abi::FieldedLogFn) {
    crate::host_log::enable_log_fields(log);
}

extern "C" fn shutdown() {
    let _ = catch_unwind(|| {
        let runtime = RUNTIME.lock().ok().and_then(|mut runtime| runtime.take());
        if let Some(runtime) = runtime {
            // Tasks still running are dropped, and their guards report failures.
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    });
}

/// Reports an activity's response to the host exactly once: on completion, or, if the
/// future is dropped first (runtime shutdown), with a failure.
struct CompletionGuard {
    host: HostCallbacks,
    token: u64,
    instance_id: String,
    task_id: i32,
    sent: bool,
}

impl CompletionGuard {
    fn new(host: HostCallbacks, token: u64, instance_id: String, task_id: i32) -> Self {
        Self {
            host,
            token,
            instance_id,
            task_id,
            sent: false,
        }
    }

    fn complete(&mut self, response: proto::ActivityResponse) {
        if self.sent {
            return;
        }
        self.sent = true;
        (self.host.activity_completed)(
            self.host.plugin_id,
            self.token,
            RVec::from(response.encode_to_vec()),
        );
    }

    fn complete_with_failure(mut self, details: FailureDetails) {
        let response = self.failure(details);
        self.complete(response);
    }

    fn failure(&self, details: FailureDetails) -> proto::ActivityResponse {
        failure::activity(self.instance_id.clone(), self.task_id, details.to_proto())
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        if !self.sent {
            let response = self.failure(FailureDetails::new(
                error_types::PLUGIN_PANIC,
                "the activity was dropped before it completed (the plugin is shutting down)",
            ));
            self.complete(response);
        }
    }
}

/// The failure details of a caught panic, with its backtrace when the hook recorded one.
fn panic_failure(payload: &(dyn std::any::Any + Send)) -> FailureDetails {
    let mut details = FailureDetails::new(error_types::PLUGIN_PANIC, panic_message(payload));
    details.stack_trace = crate::panic_trace::take();
    details
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Exports a plugin: its name, its version and its registrations.
///
/// Put it once at the root of a `cdylib` crate. It defines the two exported statics the
/// host looks for (a [`PluginDeclaration`](crate::abi::PluginDeclaration) and the
/// [`abi`](crate::abi) function table), so it must appear exactly once per library. The
/// functions are registered when the host loads the plugin, not at compile time: a
/// registration that panics makes the host refuse the plugin with the panic message.
///
/// Both `name` and `version` are `&'static str` expressions; `env!("CARGO_PKG_VERSION")`
/// is the usual version.
///
/// # Examples
///
/// The simple form registers functions under their own names. List them by identifier (import
/// them first if they live in other modules); either list may be empty, `[]`:
///
/// ```rust,standalone_crate
/// use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
///
/// async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
///     Ok(format!("Hello {city}!"))
/// }
///
/// async fn hello_cities(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
///     let mut greetings = Vec::new();
///     for city in ["Tokyo", "Seattle", "London"] {
///         greetings.push(ctx.call_activity::<_, String>("say_hello", city).await?);
///     }
///     Ok(greetings)
/// }
///
/// durabletask_sdk::export_plugin! {
///     name: "hello",
///     version: env!("CARGO_PKG_VERSION"),
///     orchestrators: [hello_cities],
///     activities: [say_hello],
/// }
/// # fn main() {}
/// ```
///
/// Entities join with two optional lists, in this order: `entities` for function
/// entities, registered under the function's name, and `entity_classes` for class
/// entities (types with [`entity_operations!`](crate::entity_operations!)), registered
/// under the type's name lowercased, as the reference SDK registers a class: `Account`
/// answers to `@account@<key>`. Entity names are case-insensitive, so ids may spell the
/// name in any case. For any other name, use the `register` form.
///
/// ```rust,standalone_crate
/// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, OrchestrationContext};
/// use serde::{Deserialize, Serialize};
///
/// /// A function entity: "counter".
/// fn counter(ctx: &mut EntityContext, amount: Option<i64>) -> Result<i64, Error> {
///     let value = ctx.get_state::<i64>()?.unwrap_or(0) + amount.unwrap_or(1);
///     ctx.set_state(value)?;
///     Ok(value)
/// }
///
/// /// A class entity: "account".
/// #[derive(Default, Serialize, Deserialize)]
/// struct Account {
///     balance: i64,
/// }
///
/// impl Account {
///     fn deposit(&mut self, amount: i64) -> Result<i64, Error> {
///         self.balance += amount;
///         Ok(self.balance)
///     }
/// }
///
/// durabletask_sdk::entity_operations!(Account { deposit });
///
/// async fn count(ctx: OrchestrationContext, key: String) -> Result<i64, Error> {
///     let counter = EntityInstanceId::new("counter", key)?;
///     Ok(ctx.call_entity::<_, i64>(&counter, "add", 1).await?)
/// }
///
/// async fn pay_in(ctx: OrchestrationContext, key: String) -> Result<i64, Error> {
///     let account = EntityInstanceId::new("account", key)?;
///     Ok(ctx.call_entity::<_, i64>(&account, "deposit", 10).await?)
/// }
///
/// durabletask_sdk::export_plugin! {
///     name: "counting",
///     version: "1.0.0",
///     orchestrators: [count, pay_in],
///     activities: [],
///     entities: [counter],
///     entity_classes: [Account],
/// }
/// # fn main() {}
/// ```
///
/// The `register` form takes a function (or a non-capturing closure) that receives the
/// [`Registry`](crate::Registry), for names of your choosing:
///
/// ```rust,standalone_crate
/// use durabletask_sdk::{ActivityContext, Error, Registry};
///
/// async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
///     Ok(format!("Hello {city}!"))
/// }
///
/// fn register(registry: &mut Registry) {
///     registry.activity("say-hello", say_hello);
/// }
///
/// durabletask_sdk::export_plugin! {
///     name: "hello",
///     version: "1.0.0",
///     register: register,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        register: $register:expr $(,)?
    ) => {
        /// Read by the host before any plugin code runs.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static DURABLETASK_PLUGIN_DECLARATION: $crate::abi::PluginDeclaration =
            $crate::abi::PluginDeclaration::CURRENT;

        /// Found by hosts that keep log fields apart: its name is `LOG_FIELDS_SYMBOL`
        /// (the host's end-to-end tests of plugin log fields fail if it is not).
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static DURABLETASK_PLUGIN_LOG_FIELDS: $crate::abi::LogFieldsExport =
            $crate::abi::LogFieldsExport::new($crate::export::enable_log_fields);

        #[doc(hidden)]
        static __DURABLETASK_PLUGIN_DEFINITION: $crate::export::PluginDefinition =
            $crate::export::PluginDefinition {
                name: $name,
                version: $version,
                register: $register,
            };

        /// abi_stable's root module (the symbol name is checked by a unit test of the SDK).
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __DURABLETASK_ROOT_MODULE: $crate::export::RootModuleHeader = {
            extern "C" fn __durabletask_load_root_module() -> $crate::export::RootResult {
                $crate::export::root_module_loader(&__DURABLETASK_PLUGIN_DEFINITION)
            }
            $crate::export::lib_header(__durabletask_load_root_module)
        };
    };
    (
        name: $name:expr,
        version: $version:expr,
        orchestrators: [$($orchestrator:ident),* $(,)?],
        activities: [$($activity:ident),* $(,)?]
        $(, entities: [$($entity:ident),* $(,)?])?
        $(, entity_classes: [$($entity_class:ident),* $(,)?])? $(,)?
    ) => {
        $crate::export_plugin! {
            name: $name,
            version: $version,
            register: |registry: &mut $crate::Registry| {
                $( registry.orchestrator(stringify!($orchestrator), $orchestrator); )*
                $( registry.activity(stringify!($activity), $activity); )*
                $($( registry.entity(stringify!($entity), $entity); )*)?
                // `entity_class` lowercases the name: `Account` registers as "account".
                $($( registry.entity_class::<$entity_class>(stringify!($entity_class)); )*)?
            },
        }
    };
}

#[cfg(test)]
mod tests {
    //! The list form of `export_plugin!`, expanded here once (it defines the plugin's
    //! exported statics, so a test binary can hold only one).

    use serde::{Deserialize, Serialize};

    use crate::{ActivityContext, EntityContext, Error, OrchestrationContext, Registry};

    async fn greet_all(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
        Ok(())
    }

    async fn say_hello(_ctx: ActivityContext, _input: ()) -> Result<(), Error> {
        Ok(())
    }

    fn visit_counter(_ctx: &mut EntityContext, _input: ()) -> Result<(), Error> {
        Ok(())
    }

    #[derive(Default, Serialize, Deserialize)]
    struct BankAccount {
        balance: i64,
    }

    impl BankAccount {
        fn balance(&self) -> Result<i64, Error> {
            Ok(self.balance)
        }
    }

    crate::entity_operations!(BankAccount { balance });

    #[derive(Default, Serialize, Deserialize)]
    struct Tally {
        count: u64,
    }

    impl Tally {
        fn bump(&mut self) -> Result<u64, Error> {
            self.count += 1;
            Ok(self.count)
        }
    }

    crate::entity_operations!(Tally { bump });

    crate::export_plugin! {
        name: "lists",
        version: "1.0.0",
        orchestrators: [greet_all],
        activities: [say_hello],
        entities: [visit_counter],
        entity_classes: [BankAccount, Tally],
    }

    #[test]
    fn the_list_form_registers_functions_by_name_and_classes_by_lowercased_type_name() {
        let mut registry = Registry::new();
        (__DURABLETASK_PLUGIN_DEFINITION.register)(&mut registry);
        assert_eq!(registry.orchestrator_names(), ["greet_all"]);
        assert_eq!(registry.activity_names(), ["say_hello"]);
        assert_eq!(
            registry.entity_names(),
            ["bankaccount", "tally", "visit_counter"]
        );
        assert_eq!(__DURABLETASK_PLUGIN_DEFINITION.name, "lists");
    }
}
