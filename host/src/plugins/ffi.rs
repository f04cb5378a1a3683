//! Every `unsafe` operation on a plugin library, kept in this one module.
//!
//! The rest of the host sees a [`PluginLibrary`]: a checked, initialised function table
//! it can call safely. The checks run in this order, and the first two run no plugin
//! code at all:
//! 1. `dlopen` the private copy (ELF constructors run; Rust cdylibs have none of note);
//! 2. read the [`PluginDeclaration`] static with `dlsym`: missing → not a plugin; wrong
//!    magic or ABI version → incompatible; `panic = "abort"` → refused;
//! 3. abi_stable's version and layout check of the function table;
//! 4. `init`, the first plugin code that runs.
//!
//! Libraries are never unloaded (abi_stable's global layout caches point into each
//! image, and glibc keeps an image mapped anyway while thread-locals of its threads
//! live): a retired plugin is shut down and stays mapped until the process ends.

use std::path::Path;

use abi_stable::library::lib_header_from_path;
use durabletask_abi::{
    ABI_VERSION, DECLARATION_SYMBOL, PLUGIN_MAGIC, PanicStrategy, PluginDeclaration,
    PluginModuleRef,
};

use super::error::LoadError;

/// A plugin library whose declaration and layout were checked.
#[derive(Clone, Copy)]
pub(crate) struct PluginLibrary {
    pub(crate) module: PluginModuleRef,
    pub(crate) declaration: PluginDeclaration,
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

    // Never unload: see the module documentation.
    std::mem::forget(library);
    Ok(PluginLibrary {
        module,
        declaration,
    })
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
