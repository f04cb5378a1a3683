//! The declaration every plugin exports: read by the host before any plugin code runs.

/// The version of this ABI. The host refuses a plugin that declares another one.
///
/// Bump it on any change to the function table or to [`PluginDeclaration`] that an older
/// host or plugin could misread, and whenever the function table's types move to another
/// crate: abi_stable's layout check compares the name of the package that defines each
/// type, so a plugin built before the move would be refused with a long layout error
/// instead of this clear one.
///
/// - 2: entity batches (`run_entity_batch`).
/// - 3: the types moved from durabletask-sdk to durabletask-abi.
pub const ABI_VERSION: u32 = 3;

/// The first bytes of every [`PluginDeclaration`]: tells a durabletask plugin apart from
/// any other library that happens to export a symbol of the same name.
pub const PLUGIN_MAGIC: [u8; 8] = *b"DTPLUGIN";

/// The name of the exported [`PluginDeclaration`] static (without the trailing NUL).
pub const DECLARATION_SYMBOL: &str = "DURABLETASK_PLUGIN_DECLARATION";

/// How the plugin was compiled to handle panics.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicStrategy {
    /// `panic = "unwind"`: the SDK catches every panic at the ABI boundary.
    Unwind = 1,
    /// `panic = "abort"`: any panic in the plugin would abort the whole host.
    Abort = 2,
}

/// A plain-C declaration every plugin exports under [`DECLARATION_SYMBOL`].
///
/// The host reads it with `dlsym` *before* it runs any plugin code, in the manner of
/// PostgreSQL's magic block: a library without it is not a plugin; a plugin with another
/// [`ABI_VERSION`] or built with `panic = "abort"` is refused with a one-line reason.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginDeclaration {
    /// Always [`PLUGIN_MAGIC`].
    pub magic: [u8; 8],
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// The plugin's panic strategy, as a [`PanicStrategy`] discriminant.
    pub panic_strategy: u8,
    /// The durabletask-sdk version, NUL-padded UTF-8 (for error messages only).
    pub sdk_version: [u8; 24],
}

impl PluginDeclaration {
    /// The declaration of a plugin built with this crate.
    ///
    /// `cfg!(panic = ...)` is evaluated when this crate is compiled, which happens with the
    /// plugin's own profile: a `panic = "abort"` build of the plugin compiles this crate
    /// with `panic = "abort"` too. The version is this crate's, which is the SDK's: both
    /// take the workspace's version (a unit test of the SDK checks it).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_abi::{ABI_VERSION, PLUGIN_MAGIC, PanicStrategy, PluginDeclaration};
    ///
    /// let declaration = PluginDeclaration::CURRENT;
    /// assert_eq!((declaration.magic, declaration.abi_version), (PLUGIN_MAGIC, ABI_VERSION));
    /// assert_eq!(declaration.panic_strategy, PanicStrategy::Unwind as u8); // tests unwind
    /// ```
    pub const CURRENT: PluginDeclaration = PluginDeclaration {
        magic: PLUGIN_MAGIC,
        abi_version: ABI_VERSION,
        panic_strategy: if cfg!(panic = "unwind") {
            PanicStrategy::Unwind as u8
        } else {
            PanicStrategy::Abort as u8
        },
        sdk_version: padded_version(env!("CARGO_PKG_VERSION")),
    };

    /// The SDK version the plugin was built with, for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_abi::PluginDeclaration;
    ///
    /// assert!(!PluginDeclaration::CURRENT.sdk_version().is_empty());
    /// ```
    pub fn sdk_version(&self) -> String {
        let end = self
            .sdk_version
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.sdk_version.len());
        String::from_utf8_lossy(&self.sdk_version[..end]).into_owned()
    }
}

const fn padded_version(version: &str) -> [u8; 24] {
    let bytes = version.as_bytes();
    let mut out = [0u8; 24];
    let mut i = 0;
    while i < bytes.len() && i < out.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_carries_this_build() {
        let declaration = PluginDeclaration::CURRENT;
        assert_eq!(declaration.magic, PLUGIN_MAGIC);
        assert_eq!(declaration.abi_version, ABI_VERSION);
        assert_eq!(declaration.panic_strategy, PanicStrategy::Unwind as u8);
        assert_eq!(declaration.sdk_version(), env!("CARGO_PKG_VERSION"));
    }
}
