//! Libraries the host must refuse are refused one by one, with a reason, while the good
//! plugins beside them are served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{
    Backend, Client, Host, HostConfig, PluginFile, Result, WAIT, assert_hello_cities_completed,
};

/// A library in the plugins directory that the host must refuse, and a word its
/// one-line reason must contain (compared case-insensitively).
struct Refused {
    file_name: &'static str,
    reason_word: &'static str,
}

const REFUSED: [Refused; 3] = [
    // Declares ABI version 999.
    Refused {
        file_name: "libincompatible.so",
        reason_word: "abi",
    },
    // The faulty plugin built with panic = "abort": a panic in it would kill the host.
    Refused {
        file_name: "libfaulty.so",
        reason_word: "abort",
    },
    // libm: a fine library, but not a plugin.
    Refused {
        file_name: "libnotaplugin.so",
        reason_word: "not a",
    },
];

#[test]
fn refused_libraries_are_logged_one_line_each_and_the_others_still_serve() -> Result<()> {
    let backend = Backend::start()?;
    let config = HostConfig::new(backend.endpoint())
        .plugin(PluginFile::built("hello")?)
        .plugin(PluginFile::built("incompatible")?)
        .plugin(PluginFile::panic_abort_build("faulty")?)
        .plugin(PluginFile::not_a_plugin()?);
    let mut host = Host::start(&config)?;
    let client = Client::new(backend.endpoint())?;

    for refused in &REFUSED {
        let is_refusal = |line: &str| {
            let line = line.to_lowercase();
            line.contains(&refused.file_name.to_lowercase()) && line.contains(refused.reason_word)
        };
        host.wait_for_log_matching(
            &format!("why it refused {}", refused.file_name),
            is_refusal,
            WAIT,
        )?;
        let lines: Vec<String> = host
            .logs()
            .lines()
            .filter(|line| is_refusal(line))
            .map(str::to_owned)
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line refusing {}, got {lines:#?}",
            refused.file_name
        );
    }

    // The good plugin is served...
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);

    // ...and the refused panic=abort build's orchestrators are not: its code never ran.
    let state = client.start_and_wait("panic_orchestrator", None, WAIT)?;
    assert_eq!(state["status"], "FAILED", "{state:#}\n{}", host.log_tail());
    assert_eq!(
        state["failure_details"]["error_type"], "OrchestratorNotRegistered",
        "{state:#}"
    );

    assert!(host.is_running()?, "{}", host.log_tail());
    Ok(())
}

#[test]
fn a_host_with_only_refused_libraries_keeps_running() -> Result<()> {
    let backend = Backend::start()?;
    let config = HostConfig::new(backend.endpoint()).plugin(PluginFile::built("incompatible")?);
    let mut host = Host::start(&config)?;
    let client = Client::new(backend.endpoint())?;

    host.wait_for_log("libincompatible.so", WAIT)?;

    // Work it cannot run is failed, not dropped or left hanging.
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_eq!(state["status"], "FAILED", "{state:#}\n{}", host.log_tail());
    assert_eq!(
        state["failure_details"]["error_type"], "OrchestratorNotRegistered",
        "{state:#}"
    );
    assert!(host.is_running()?, "{}", host.log_tail());
    Ok(())
}
