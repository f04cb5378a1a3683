//! The resource limits of a plugin's child process, applied by the child to itself
//! (`setrlimit`) before it loads the library, so no plugin code runs without them.
//!
//! Linux resource limits are what a process can set on itself without privileges.
//! cgroups would also bound a child's CPU rate and its memory including the page cache,
//! but need a delegated cgroup tree the host cannot count on (none is writable in the
//! CI container this was built in): CPU here is a total-time backstop, not a rate.

use std::time::Duration;

use rustix::process::{Resource, Rlimit, setrlimit};

/// What a child may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `RLIMIT_DATA` in bytes (data segment and private writable mappings: what the
    /// allocator takes); `None`: unlimited.
    pub(crate) memory_bytes: Option<u64>,
    /// `RLIMIT_CPU` in whole seconds; `None`: unlimited.
    pub(crate) cpu_seconds: Option<u64>,
}

impl Limits {
    /// From `[plugins] memory_limit_mb` (0 = none) and `cpu_time_limit`.
    pub(crate) fn new(memory_limit_mb: u64, cpu_time_limit: Option<Duration>) -> Self {
        Self {
            memory_bytes: (memory_limit_mb > 0).then(|| memory_limit_mb.saturating_mul(1 << 20)),
            // Rounded up: a limit under a second must not become "none".
            cpu_seconds: cpu_time_limit
                .filter(|limit| !limit.is_zero())
                .map(|limit| limit.as_secs() + u64::from(limit.subsec_nanos() > 0)),
        }
    }

    /// The command-line arguments that carry these limits to the child.
    pub(crate) fn to_args(self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(bytes) = self.memory_bytes {
            args.extend(["--memory-limit-bytes".to_owned(), bytes.to_string()]);
        }
        if let Some(seconds) = self.cpu_seconds {
            args.extend(["--cpu-limit-seconds".to_owned(), seconds.to_string()]);
        }
        args
    }

    /// Sets them on the calling process.
    pub(crate) fn apply(self) -> std::io::Result<()> {
        if let Some(bytes) = self.memory_bytes {
            setrlimit(
                Resource::Data,
                Rlimit {
                    current: Some(bytes),
                    maximum: Some(bytes),
                },
            )?;
        }
        if let Some(seconds) = self.cpu_seconds {
            // The soft limit sends SIGXCPU, whose default action ends the process; the
            // hard limit one second later is SIGKILL, should a plugin catch SIGXCPU.
            setrlimit(
                Resource::Cpu,
                Rlimit {
                    current: Some(seconds),
                    maximum: Some(seconds.saturating_add(1)),
                },
            )?;
        }
        Ok(())
    }

    /// What the host says when a child died while limited, for the failure message.
    pub(crate) fn describe(self) -> Option<String> {
        let memory = self
            .memory_bytes
            .map(|bytes| format!("[plugins] memory_limit_mb = {}", bytes >> 20));
        let cpu = self
            .cpu_seconds
            .map(|seconds| format!("[plugins] cpu_time_limit = {seconds}s"));
        let limits: Vec<String> = memory.into_iter().chain(cpu).collect();
        (!limits.is_empty()).then(|| limits.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_no_limit_and_cpu_time_rounds_up() {
        assert_eq!(Limits::new(0, None), Limits::default());
        assert_eq!(Limits::new(0, Some(Duration::ZERO)), Limits::default());
        let limits = Limits::new(256, Some(Duration::from_millis(1500)));
        assert_eq!(limits.memory_bytes, Some(256 << 20));
        assert_eq!(limits.cpu_seconds, Some(2));
        assert_eq!(
            limits.to_args(),
            [
                "--memory-limit-bytes",
                &(256u64 << 20).to_string(),
                "--cpu-limit-seconds",
                "2"
            ]
        );
        assert_eq!(
            limits.describe().as_deref(),
            Some("[plugins] memory_limit_mb = 256, [plugins] cpu_time_limit = 2s")
        );
        assert_eq!(Limits::default().describe(), None);
    }
}
