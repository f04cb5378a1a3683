//! The harness's own guarantees, which the other tests rely on: the reference backend
//! starts, a busy port is refused rather than shared, and a killed backend can be
//! restarted on its port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Backend, Result};

#[test]
fn a_backend_can_be_killed_and_restarted_on_its_port_but_never_shares_it() -> Result<()> {
    let mut backend = Backend::start()?;
    let port = backend.port();
    assert_eq!(backend.endpoint(), format!("http://127.0.0.1:{port}"));

    // gRPC would share a busy port (SO_REUSEPORT); the launcher must refuse it, or two
    // tests could end up talking to each other's backends.
    assert!(
        Backend::start_on(port).is_err(),
        "a second backend started on busy port {port}"
    );

    backend.kill()?;
    let restarted = Backend::start_on(port)?;
    assert_eq!(restarted.port(), port);
    Ok(())
}
