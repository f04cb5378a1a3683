//! The stop signals a plugin's child process ignores. The host decides when a child
//! stops (a `Shutdown` frame, the end of its socket, or SIGKILL to its group); a SIGTERM
//! sent to every process of the service at once (systemd's default `KillMode`) must
//! reach the host, which drains the work in flight, and not end the children under it.
//! The one `unsafe` call of the child, kept here.

/// Sets SIGTERM, SIGINT and SIGHUP to "ignore" in this process. Called first thing in
/// the child, before any other thread or any plugin code exists.
pub(crate) fn ignore_stop_signals() -> std::io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: `signal` with `SIG_IGN` installs no handler (no code runs on delivery),
        // takes no pointers, and is called while this process has one thread, so no
        // other thread can be changing dispositions at the same time.
        let previous = unsafe { libc::signal(signal, libc::SIG_IGN) };
        if previous == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
