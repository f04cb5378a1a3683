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

/// Issue 14: a plugin that registers a name another plugin in service registers (here the
/// activity `charge_payment` of the `orders` sample) is refused, with a line that names
/// the name and the other plugin; `plugins` and `validate` say so and exit 1. The plugin
/// in service keeps the name and runs its own code; once it is gone, the refused one
/// goes in service.
#[test]
fn a_name_another_plugin_registers_is_a_conflict_the_user_sees() -> Result<()> {
    use durabletask_e2e::{Fixture, paths};

    // File names sort `orders` first: at start the later file is the one refused.
    let payments = PluginFile::built("payments")?.named("zz_payments.so");
    let mut fixture = Fixture::start_with(&["orders_v1"], |config| {
        config.plugin(payments.clone()).watch_plugins()
    })?;
    let refusal = fixture.host.wait_for_log_line(
        &[
            "refused plugin",
            "zz_payments.so",
            "charge_payment",
            "'orders'",
        ],
        WAIT,
    )?;
    assert!(refusal.contains("rename one of them"), "{refusal}");

    // `plugins` and `validate` on the same configuration list it as refused and exit 1.
    for command in ["plugins", "validate"] {
        let output = std::process::Command::new(paths::host_binary()?)
            .arg(command)
            .arg("--config")
            .arg(fixture.host.config_path())
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(1), "{command}: {text}");
        assert!(
            text.contains("zz_payments.so") && text.contains("charge_payment"),
            "{command}: {text}"
        );
    }

    // The orders plugin keeps its name and its code.
    let state = fixture.run("process_order", Some(serde_json::json!({"id": "o-1"})))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));

    // Once orders is gone, payments goes in service and serves its own orchestration.
    fixture
        .host
        .remove_plugin(PluginFile::built("orders_v1")?.file_name())?;
    fixture
        .host
        .wait_for_log_line(&["loaded plugin payments 1.0.0", "in service"], WAIT)?;
    let state = fixture.run("pay", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], "charged 250 cents");
    Ok(())
}
