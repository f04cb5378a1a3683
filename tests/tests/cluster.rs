//! Issue 15's proof: three hosts (separate processes, each with its own listen address)
//! share one task hub in one PostgreSQL database. Orchestrations and entity transfers are
//! started through all three; mid-run the host running the engine is SIGKILLed, then the
//! one that took over is SIGSTOPped for longer than the takeover time and resumed. Every
//! orchestration must complete with its right output, the transfers must conserve the
//! money, no activity result may be applied twice, and the resumed host must step back
//! (it cannot commit with the lease it lost) and then serve through the new leader.
//!
//! The two failures take the two ways a lease changes hands. The killed leader's process
//! is gone, and hosts on the same machine (boot and PID namespace) see that and take over
//! at once; across machines they would wait out the lease, as the paused leader's
//! survivor does here (its process still exists).
//!
//! Always on PostgreSQL (the test cluster of `scripts/lib/postgres.sh`, started by the
//! harness if it is down).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use durabletask_e2e::{
    Client, EmbeddedBackend, Error, Host, HostConfig, PluginFile, Result, WAIT, postgres,
};
use serde_json::{Value, json};

const ORCHESTRATIONS: usize = 1000;
const TRANSFERS: usize = 200;
const ACCOUNTS: usize = 10;
const OPENING_BALANCE: i64 = 1000;
/// `bench_seq_fan`'s shape: K activities in sequence, then F in parallel.
const K: i64 = 5;
const F: i64 = 5;
/// Short, so the test sees two takeovers quickly; the default is 5 s.
const TAKEOVER_TIME: &str = "2s";
const TAKEOVER_SECONDS: u64 = 2;

/// The log line of the host that took the lease and serves from its engine.
const LEADS: &str = "this host runs the task hub's engine";
const FOLLOWS: &str = "following the host that runs the task hub's engine";

fn cluster_host(database: &str) -> Result<Host> {
    let config = HostConfig::embedded()
        .with_embedded(EmbeddedBackend {
            database: database.into(),
            takeover_time: Some(TAKEOVER_TIME.to_owned()),
            ..EmbeddedBackend::default()
        })
        .plugin(PluginFile::built("bench")?)
        .plugin(PluginFile::built("entities")?);
    Host::start(&config)
}

/// `bench_seq_fan(x, K, F)`'s output.
fn expected(x: i64) -> Value {
    json!({ "seq": x + K, "fan_sum": F * (x + K) + F * (F + 1) / 2 })
}

fn account(index: usize) -> String {
    format!("account-{index}")
}

/// A tiny deterministic generator (no dependency, reproducible).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 33) % bound
    }
}

/// Starts `starts` (instance id, orchestration, input) from four threads, start `i`
/// through client `i % clients.len()`, or the next one not in `avoided` (a bit per
/// client: what a load balancer's health check would take out). A start that fails is
/// retried through the next host; "already exists" means an earlier attempt got through.
fn start_all(
    clients: &[Client],
    starts: &[(String, &str, Value)],
    avoided: &AtomicUsize,
    started: &AtomicUsize,
) -> Result<()> {
    thread::scope(|scope| -> Result<()> {
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                scope.spawn(move || -> Result<()> {
                    for (i, (id, name, input)) in starts.iter().enumerate() {
                        if i % 4 != thread {
                            continue;
                        }
                        let deadline = Instant::now() + WAIT;
                        let mut attempt = i;
                        loop {
                            let choice = attempt % clients.len();
                            attempt += 1;
                            if avoided.load(Ordering::SeqCst) & (1 << choice) != 0 {
                                continue;
                            }
                            match clients[choice].start_with_id(name, id, Some(input)) {
                                Ok(()) => break,
                                Err(error) if error.to_string().contains("already exists") => {
                                    break;
                                }
                                Err(error) if Instant::now() > deadline => return Err(error),
                                Err(_) => thread::sleep(Duration::from_millis(100)),
                            }
                        }
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(())
                })
            })
            .collect();
        threads.into_iter().try_for_each(|thread| {
            thread
                .join()
                .map_err(|_| Error::new("a start thread panicked"))?
        })
    })
}

/// Waits until `count` starts went through.
fn wait_for_starts(started: &AtomicUsize, count: usize) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while started.load(Ordering::SeqCst) < count {
        if Instant::now() > deadline {
            return Err(Error::new(format!(
                "fewer than {count} starts went through"
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Lists the instances with `prefix` in `status` through `client`, retrying while calls
/// fail (a takeover is under way), until there are `count` of them.
fn wait_for_count(client: &Client, status: &str, prefix: &str, count: usize) -> Result<Vec<Value>> {
    let deadline = Instant::now() + WAIT * 4;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.list(&[status], Some(prefix), Some(count + 10)) {
            Ok(listed) if listed.len() == count => return Ok(listed),
            Ok(listed) => last = format!("{} of {count} {status}", listed.len()),
            Err(error) => last = error.to_string(),
        }
        thread::sleep(Duration::from_millis(250));
    }
    Err(Error::new(format!(
        "{prefix}*: not all {status} in time (last: {last})"
    )))
}

#[test]
fn three_hosts_share_a_task_hub_and_survive_a_killed_and_a_paused_leader() -> Result<()> {
    let database = postgres::fresh_database()?;
    let mut first = cluster_host(&database)?;
    first.wait_for_log_line(&[LEADS], WAIT)?;
    let mut second = cluster_host(&database)?;
    let mut third = cluster_host(&database)?;
    for host in [&mut second, &mut third] {
        host.wait_for_log_line(&[FOLLOWS], WAIT)?;
    }
    let clients = [
        Client::new(first.embedded_endpoint()?)?,
        Client::new(second.embedded_endpoint()?)?,
        Client::new(third.embedded_endpoint()?)?,
    ];

    // Accounts, opened through a follower.
    let openings: Vec<Value> = (0..ACCOUNTS)
        .map(|index| json!({"key": account(index), "amount": OPENING_BALANCE}))
        .collect();
    let opened = clients[1].start_and_wait("open_accounts", Some(&json!(openings)), WAIT)?;
    assert_eq!(opened["status"], "COMPLETED", "{opened:#}");

    // The work, started through all three hosts.
    let mut random = Lcg(0x15);
    let mut starts: Vec<(String, &str, Value)> = (0..ORCHESTRATIONS)
        .map(|x| {
            (
                format!("fan-{x:04}"),
                "bench_seq_fan",
                json!({"x": x, "k": K, "f": F}),
            )
        })
        .collect();
    for t in 0..TRANSFERS {
        let from = random.below(ACCOUNTS as u64) as usize;
        let to = (from + 1 + random.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
        let amount = 1 + random.below(300);
        starts.push((
            format!("transfer-{t:03}"),
            "transfer",
            json!({"from": account(from), "to": account(to), "amount": amount}),
        ));
    }
    let total = starts.len();
    let avoided = AtomicUsize::new(0);
    let started = AtomicUsize::new(0);
    let (mut resumed, mut survivor, takeover, pause) = thread::scope(|scope| {
        let starter = scope.spawn(|| start_all(&clients, &starts, &avoided, &started));
        let chaos = chaos([first, second, third], &clients, &avoided, &started, total);
        let starting = starter
            .join()
            .map_err(|_| Error::new("the start threads panicked"))
            .and_then(|started| started);
        starting.and(chaos)
    })?;
    verify(
        &resumed.embedded_endpoint()?,
        &survivor.embedded_endpoint()?,
    )?;
    eprintln!("takeover after the kill: {takeover:?}; the pause lasted {pause:?}");
    Ok(())
}

/// Mid-run, while starts go on: the leader is killed, then the host that took over is
/// paused past the takeover time and resumed. Returns the resumed host and the one
/// running the engine at the end, with the two takeover times.
fn chaos(
    [mut first, second, third]: [Host; 3],
    clients: &[Client; 3],
    avoided: &AtomicUsize,
    started: &AtomicUsize,
    total: usize,
) -> Result<(Host, Host, Duration, Duration)> {
    wait_for_starts(started, total / 4)?;
    avoided.fetch_or(1, Ordering::SeqCst);
    let done_before_kill = clients[1].list(&["COMPLETED"], Some("fan-"), Some(ORCHESTRATIONS))?;
    assert!(
        done_before_kill.len() < ORCHESTRATIONS,
        "all orchestrations finished before the kill: the test proves nothing"
    );
    let killed = Instant::now();
    first.kill9()?;
    // One of the others takes over within the takeover time (plus loading): (host, its
    // client's bit) for the new leader and the survivor.
    let ((mut leader, leader_bit), mut survivor) = loop {
        if second.logs().contains(LEADS) {
            break ((second, 2), third);
        }
        if third.logs().contains(LEADS) {
            break ((third, 4), second);
        }
        if killed.elapsed() > WAIT {
            return Err(Error::new(format!(
                "no host took over after the leader was killed\n{}\n{}",
                second.log_tail(),
                third.log_tail()
            )));
        }
        thread::sleep(Duration::from_millis(50));
    };
    let takeover = killed.elapsed();
    // On one machine the killed leader's process is seen gone: no waiting out its lease.
    assert!(
        takeover < Duration::from_secs(TAKEOVER_SECONDS),
        "took {takeover:?} to take over from a dead leader on this machine"
    );
    wait_for_starts(started, total / 2)?;

    // The new leader freezes (as in a long GC pause or a VM stall): the last host takes
    // the lease from it once it expired, and the frozen one must not commit after that.
    // (The survivor never led before: any such line of its is the second takeover.)
    avoided.fetch_or(leader_bit, Ordering::SeqCst);
    leader.signal(libc::SIGSTOP)?;
    let paused = Instant::now();
    let took_over = survivor.wait_for_log_line(&[LEADS], WAIT);
    // Frozen for twice the takeover time at least, whenever the survivor took over (its
    // last renewal may have been up to a third of the lease before the freeze).
    let frozen_for = 2 * Duration::from_secs(TAKEOVER_SECONDS);
    if let Some(rest) = frozen_for.checked_sub(paused.elapsed()) {
        thread::sleep(rest);
    }
    let pause = paused.elapsed();
    leader.signal(libc::SIGCONT)?;
    took_over?;
    // Resumed, it learns it lost the lease, steps back and follows the survivor.
    leader.wait_for_log_line(&["stepping back"], WAIT)?;
    leader.wait_for_log_line(&[FOLLOWS], WAIT)?;
    avoided.fetch_and(!leader_bit, Ordering::SeqCst);
    Ok((leader, survivor, takeover, pause))
}

/// Every orchestration completed with its right output, the transfers conserved the
/// money, and no activity result was applied twice.
fn verify(resumed: &str, survivor: &str) -> Result<()> {
    let survivor_client = Client::new(survivor)?;
    let fans = wait_for_count(&survivor_client, "COMPLETED", "fan-", ORCHESTRATIONS)?;
    let outputs: BTreeMap<String, Value> = fans
        .into_iter()
        .map(|state| {
            (
                state["instance_id"].as_str().unwrap_or_default().to_owned(),
                state["output"].clone(),
            )
        })
        .collect();
    for x in 0..ORCHESTRATIONS {
        let id = format!("fan-{x:04}");
        assert_eq!(outputs.get(&id), Some(&expected(x as i64)), "{id}");
    }
    wait_for_count(&survivor_client, "COMPLETED", "transfer-", TRANSFERS)?;
    assert!(survivor_client.list(&["FAILED"], None, None)?.is_empty());

    // The transfers conserved the money.
    let accounts: Vec<String> = (0..ACCOUNTS).map(account).collect();
    let total = survivor_client.start_and_wait("total_balance", Some(&json!(accounts)), WAIT)?;
    assert_eq!(
        total["output"],
        json!(OPENING_BALANCE * ACCOUNTS as i64),
        "{total:#}"
    );

    // One taskCompleted per taskScheduled, each scheduled once, for every orchestration
    // (read through the resumed host: it forwards to the leader now).
    let resumed_client = Client::new(resumed)?;
    thread::scope(|scope| -> Result<()> {
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let client = &resumed_client;
                scope.spawn(move || -> Result<()> {
                    for x in (thread..ORCHESTRATIONS).step_by(4) {
                        let id = format!("fan-{x:04}");
                        let events = client.history(&id)?;
                        let scheduled = events
                            .iter()
                            .filter(|event| event["kind"] == "taskScheduled")
                            .count();
                        let mut completed: Vec<i64> = events
                            .iter()
                            .filter(|event| event["kind"] == "taskCompleted")
                            .filter_map(|event| event["taskScheduledId"].as_i64())
                            .collect();
                        let count = completed.len();
                        completed.sort_unstable();
                        completed.dedup();
                        assert_eq!(count, completed.len(), "{id}: a result applied twice");
                        assert_eq!(scheduled, (K + F) as usize, "{id}");
                        assert_eq!(count, scheduled, "{id}");
                    }
                    Ok(())
                })
            })
            .collect();
        threads.into_iter().try_for_each(|thread| {
            thread
                .join()
                .map_err(|_| Error::new("a history check panicked"))?
        })
    })
}

/// `durabletask-host serve`: a backend-only node of the cluster, no plugins and no worker.
/// It runs the engine (started first, it takes the lease); a worker host joining the same
/// database forwards to it and does the work; a client of the serve node sees the result.
/// Its `/readyz` says it serves, without a plugin.
#[test]
fn a_serve_host_runs_the_backend_for_worker_hosts_of_the_cluster() -> Result<()> {
    let database = postgres::fresh_database()?;
    let backend = EmbeddedBackend {
        database: database.clone().into(),
        takeover_time: Some(TAKEOVER_TIME.to_owned()),
        ..EmbeddedBackend::default()
    };
    let mut serving = Host::serve(&HostConfig::embedded().with_embedded(backend.clone()))?;
    serving.wait_for_log_line(&["serving the embedded backend only"], WAIT)?;
    serving.wait_for_log_line(&[LEADS], WAIT)?;
    let ready = durabletask_e2e::http_get(&format!("{}/readyz", serving.admin_url()?), None)?;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let mut worker = cluster_host(&database)?;
    worker.wait_for_log_line(&[FOLLOWS], WAIT)?;
    let client = Client::new(serving.embedded_endpoint()?)?;
    let state = client.start_and_wait(
        "bench_seq_fan",
        Some(&json!({"x": 7, "k": K, "f": F})),
        WAIT,
    )?;
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    assert_eq!(state["output"], expected(7));
    // The serve node loads no plugin: the work ran in the worker host's.
    assert!(
        worker.logs().contains("loaded plugin bench"),
        "{}",
        worker.log_tail()
    );
    assert!(
        !serving.logs().contains("loaded plugin"),
        "{}",
        serving.log_tail()
    );
    Ok(())
}

/// Runs `durabletask-host COMMAND --config` on a config whose `[embedded] database` is
/// `database`: (exit code, stdout, stderr).
fn host_command(command: &str, database: &str) -> Result<(Option<i32>, String, String)> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("plugins"))?;
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[backend]\nmode = \"embedded\"\n\n[embedded]\ndatabase = \"{database}\"\n\n[plugins]\ndir = \"plugins\"\n"
        ),
    )?;
    let output = std::process::Command::new(durabletask_e2e::paths::host_binary()?)
        .arg(command)
        .arg("--config")
        .arg(&config)
        .output()?;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// `migrate` and `validate` for an operator: where the schema stands, without the
/// password in what they print.
#[test]
fn migrate_and_validate_say_where_the_schema_stands() -> Result<()> {
    let database = postgres::fresh_database()?;
    let password = database
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .ok_or_else(|| Error::new("the test cluster's URL has a password"))?;
    let (code, stdout, stderr) = host_command("validate", &database)?;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("no durabletask schema yet"), "{stdout}");
    let (code, stdout, stderr) = host_command("migrate", &database)?;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("applied migrations 1 to"), "{stdout}");
    let (code, stdout, _) = host_command("migrate", &database)?;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("up to date"), "{stdout}");
    let (code, stdout, _) = host_command("validate", &database)?;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("schema version 1, up to date"), "{stdout}");
    // Nothing listens there: a clear error naming the database, without its password.
    let port = durabletask_e2e::free_port()?;
    let unreachable = database.replace(":55432/", &format!(":{port}/"));
    let (code, stdout, stderr) = host_command("validate", &unreachable)?;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains(&format!("{port}")), "{stderr}");
    // (The test role's password is its name, so the check is on the URL's form.)
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains(&format!(":{password}@")),
            "the password leaked: {output}"
        );
    }
    assert!(stderr.contains(":***@"), "{stderr}");
    Ok(())
}

/// A host that cannot learn where the engine runs (here: the lease is held by another
/// host that advertises this host's own address, as two machines both listening on
/// 127.0.0.1 without `advertise` would) waits without serving, and still stops at the
/// first SIGTERM.
#[test]
fn a_host_waiting_for_the_lease_stops_at_the_first_sigterm() -> Result<()> {
    let database = postgres::fresh_database()?;
    let (code, stdout, stderr) = host_command("migrate", &database)?;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let port = durabletask_e2e::free_port()?;
    postgres::psql(
        &database,
        &format!(
            "UPDATE durabletask.dt_leader SET host_id = 'elsewhere', host_name = 'another machine', \
             machine = 'another machine', pid = 1, address = 'http://127.0.0.1:{port}', epoch = 7, \
             expires_at = now() + interval '1 hour'"
        ),
    )?;
    let mut host = Host::start(
        &HostConfig::embedded()
            .with_embedded(EmbeddedBackend {
                port,
                database: database.into(),
                ..EmbeddedBackend::default()
            })
            .plugin(PluginFile::built("hello")?),
    )?;
    host.wait_for_log_line(&["advertising this host's address"], WAIT)?;
    assert!(!host.logs().contains("embedded backend listening"));
    host.signal(libc::SIGTERM)?;
    let status = host.wait_exit(WAIT)?;
    assert!(status.success(), "{status:?}\n{}", host.log_tail());
    assert!(
        host.logs()
            .contains("stopped before the embedded backend served"),
        "{}",
        host.log_tail()
    );
    Ok(())
}
