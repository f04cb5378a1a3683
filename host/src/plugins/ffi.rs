//! Every `unsafe` operation on a plugin library, kept in this one module.
//!
//! The rest of the host sees a [`PluginLibrary`]: a checked, initialised function table
//! it can call safely. The checks run in this order, and the first two run no plugin
//! code at all:
//! 1. `dlopen` the private copy (ELF constructors run; Rust cdylibs have none of note);
//! 2. read the [`PluginDeclaration`] static with `dlsym`: missing → not a plugin; wrong
//!    magic or ABI version → incompatible; `panic = "abort"` → refused;
//! 3. abi_stable's version and layout check of the function table, then of the optional
//!    extensions (the log-fields export), each against the layout it carries;
//! 4. the first plugin code that runs: the extension's `enable` (it only keeps the host's
//!    callback), then `init`.
//!
//! Libraries are never unloaded (abi_stable's global layout caches point into each
//! image, and glibc keeps an image mapped anyway while thread-locals of its threads
//! live): a retired plugin is shut down and stays mapped until the process ends.

use std::path::Path;

use abi_stable::StableAbi;
use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
use abi_stable::library::lib_header_from_path;
use durabletask_abi::{
    ABI_VERSION, DECLARATION_SYMBOL, LOG_FIELDS_SYMBOL, LogFieldsExport, LogFieldsExtension,
    PLUGIN_MAGIC, PanicStrategy, PluginDeclaration, PluginModuleRef,
};

use super::error::LoadError;

/// A plugin library whose declaration and layout were checked.
#[derive(Clone, Copy)]
pub(crate) struct PluginLibrary {
    pub(crate) module: PluginModuleRef,
    pub(crate) declaration: PluginDeclaration,
    /// The log-fields extension, when the plugin exports one this host understands.
    pub(crate) log_fields: Option<LogFieldsExtension>,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("declaration", &self.declaration)
            .finish_non_exhaustive()
    }
}

/// Opens `path` (a private copy) and runs every check before plugin code runs.
pub(crate) fn open_checked(path: &Path) -> Result<PluginLibrary, LoadError> {
    // SAFETY: loading a shared library runs its ELF initialisers. The file is a private
    // copy in a host-owned folder (never the drop folder, which may be overwritten in
    // place), and running initialisers is inherent to loading any plugin.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|error| LoadError::NotALibrary(error.to_string()))?;

    let declaration = read_declaration(&library)?;
    check_declaration(&declaration)?;

    // abi_stable opens the same path again (dlopen returns the same handle) and checks
    // the abi_stable version, the root module's version strings and its type layout.
    let header = lib_header_from_path(path)
        .map_err(|error| LoadError::Incompatible(summarise(&error.to_string())))?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|error| LoadError::Incompatible(summarise(&error.to_string())))?;

    let log_fields = read_log_fields(&library);

    // Never unload: see the module documentation.
    std::mem::forget(library);
    Ok(PluginLibrary {
        module,
        declaration,
        log_fields,
    })
}

/// The plugin's log-fields extension (`durabletask_abi::LogFieldsExport`), if it
/// exports one whose layout matches this host's; `None` for plugins built before it (they
/// log through the function table's callback, fields in the message).
fn read_log_fields(library: &libloading::Library) -> Option<LogFieldsExtension> {
    // SAFETY: only called once the declaration and abi_stable's check of the root module
    // passed, so this is a durabletask plugin, whose SDK exports the symbol, if at all, as
    // a `LogFieldsExport` static: `#[repr(C)]`, a `&'static TypeLayout` made by
    // abi_stable, and a function pointer that is not used until that layout is checked.
    // The library is never unloaded, so the static outlives the reference.
    let export: &LogFieldsExport = unsafe {
        let symbol = library
            .get::<*const LogFieldsExport>(LOG_FIELDS_SYMBOL.as_bytes())
            .ok()?;
        let address: *const LogFieldsExport = *symbol;
        address.as_ref()?
    };
    match check_layout_compatibility(<LogFieldsExtension as StableAbi>::LAYOUT, export.layout) {
        Ok(()) => Some(export.extension),
        Err(error) => {
            tracing::warn!(
                reason = %summarise(&error.to_string()),
                "a plugin's log-fields extension does not match this host's: its log fields are written in the message"
            );
            None
        }
    }
}

fn read_declaration(library: &libloading::Library) -> Result<PluginDeclaration, LoadError> {
    // SAFETY: the symbol, if present, is the address of a `PluginDeclaration` static
    // exported by `export_plugin!`; the type is `#[repr(C)]`, `Copy` and made only of
    // plain integers and byte arrays, so any bit pattern read from it is a valid value.
    // The magic number is checked next, before any field is trusted.
    unsafe {
        let symbol = library
            .get::<*const PluginDeclaration>(DECLARATION_SYMBOL.as_bytes())
            .map_err(|_| LoadError::NotAPlugin)?;
        let address: *const PluginDeclaration = *symbol;
        if address.is_null() {
            return Err(LoadError::NotAPlugin);
        }
        Ok(std::ptr::read_unaligned(address))
    }
}

fn check_declaration(declaration: &PluginDeclaration) -> Result<(), LoadError> {
    if declaration.magic != PLUGIN_MAGIC {
        return Err(LoadError::NotAPlugin);
    }
    if declaration.abi_version != ABI_VERSION {
        return Err(LoadError::Incompatible(format!(
            "it was built for plugin ABI version {} (durabletask-sdk {}), this host speaks version {}; rebuild it against durabletask-sdk {}",
            declaration.abi_version,
            declaration.sdk_version(),
            ABI_VERSION,
            env!("CARGO_PKG_VERSION"),
        )));
    }
    if declaration.panic_strategy != PanicStrategy::Unwind as u8 {
        return Err(LoadError::PanicAbort);
    }
    Ok(())
}

/// abi_stable's layout errors run to hundreds of lines; the log gets the first one.
fn summarise(message: &str) -> String {
    let first = message
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("abi_stable refused the library");
    let mut summary: String = first.chars().take(300).collect();
    if message.len() > summary.len() {
        summary.push_str(" (…)");
    }
    format!("its plugin interface does not match this host's: {summary}")
}
