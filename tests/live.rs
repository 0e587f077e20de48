//! Live mode against the mock provider over real loopback sockets: the
//! report is the simulator's report with `"mode": "live"`, the arrivals are
//! the simulator's, the cost guard stops a run, and a short scenario with a
//! rate limit, a slow tail and an error spike gives the same figures live
//! as simulated, within stated bounds.
//!
//! The mock provider runs as a child process (`--serve`); under `cargo
//! test` it is built first if needed.

use std::path::Path;

use serde_json::Value;
use stormglass::live::{self, LiveOptions};
use stormglass::scenario::{self, Scenario};
use stormglass::units::SECS;

const MOCK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/mock-provider/tests/scenarios/mock.toml"
);
const FIDELITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/fidelity.toml");
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.v1.json");

/// Live tests take turns: the fidelity test must run alone, not beside
/// another live run's load on the same cores.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn load(path: &str) -> Scenario {
    scenario::load(Path::new(path)).expect("scenario loads")
}

fn json(r: &stormglass::report::Report) -> Value {
    serde_json::from_str(&stormglass::report::to_json(r)).expect("report JSON")
}

fn assert_schema_valid(v: &Value) {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(SCHEMA).expect("schema")).expect("JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("report.json", schema)
        .expect("schema resource");
    let index = compiler
        .compile("report.json", &mut schemas)
        .expect("schema compiles");
    if let Err(e) = schemas.validate(v, index) {
        panic!("live report does not match the schema: {e:#}");
    }
}

#[test]
fn a_live_run_reports_like_a_simulated_one() {
    let _alone = alone();
    let sc = load(MOCK);
    let opts = LiveOptions {
        serve: true,
        duration: Some(4 * SECS),
        ..Default::default()
    };
    let report = live::run(&sc, &opts).expect("live run");
    let v = json(&report);
    assert_eq!(v["mode"], "live");
    assert_schema_valid(&v);
    let info = &v["live"];
    assert_eq!(info["mock_provider"], true);
    assert_eq!(info["duration_ns"], 4 * SECS);
    let driver = &info["strategies"][0];
    assert!(
        driver["schedule_lag_max_ns"]
            .as_u64()
            .is_some_and(|l| l < SECS),
        "{driver}"
    );

    // The same arrivals as the simulator's over the same window.
    let mut short = load(MOCK);
    short.duration = 4 * SECS;
    let (simulated, _) = stormglass::sim::run(&short, 1).expect("sim");
    let sim = &json(&simulated)["strategies"][0];
    let s = &v["strategies"][0];
    assert_eq!(s["requests"], sim["requests"], "live {s}\nsim {sim}");
    assert!(s["requests"].as_u64().is_some_and(|n| n >= 2), "{s}");
    assert_eq!(s["success_rate"], 1.0, "{s}");
    assert_eq!(driver["requests"], s["requests"]);
    assert_eq!(driver["attempts_sent"], s["attempts"]);
}

#[test]
fn the_cost_guard_stops_a_live_run() {
    let _alone = alone();
    let sc = load(MOCK);
    let opts = LiveOptions {
        serve: true,
        duration: Some(5 * SECS),
        max_cost: Some(1e-9),
        ..Default::default()
    };
    let report = live::run(&sc, &opts).expect("live run");
    let v = json(&report);
    let driver = &v["live"]["strategies"][0];
    assert_eq!(driver["stopped_by_cost_guard"], true, "{driver}");
    // Arrivals stopped after the first answer billed; five were scheduled.
    assert!(
        driver["requests"].as_u64().is_some_and(|n| n < 3),
        "{driver}"
    );
    assert!(
        driver["spent_usd"].as_f64().is_some_and(|c| c > 0.0),
        "{driver}"
    );
}

#[test]
fn live_and_simulated_runs_agree_on_a_short_storm() {
    let _alone = alone();
    let sc = load(FIDELITY);
    let (simulated, _) = stormglass::sim::run(&sc, 1).expect("sim");
    let live = live::run(
        &sc,
        &LiveOptions {
            serve: true,
            ..Default::default()
        },
    )
    .expect("live run");
    let (sim, live) = (json(&simulated), json(&live));
    let (s, l) = (&sim["strategies"][0], &live["strategies"][0]);
    let f = |v: &Value, path: &[&str]| {
        let mut x = v;
        for p in path {
            x = &x[*p];
        }
        x.as_f64().unwrap_or_else(|| panic!("{path:?} in {v}"))
    };
    let close = |what: &str, a: f64, b: f64, rel: f64| {
        assert!(
            (a - b).abs() <= rel * a.abs().max(b.abs()),
            "{what}: sim {a} vs live {b} (allowed {:.0}%)\nsim {s}\nlive {l}",
            rel * 100.0
        );
    };
    // The same arrivals, hence the same requests.
    assert_eq!(s["requests"], l["requests"]);
    // The storm is real in both: 429s from the pool, 500s from the spike.
    assert!(f(s, &["failures", "rate_limited"]) > 0.0 && f(l, &["failures", "rate_limited"]) > 0.0);
    // The issue's tolerances: attempts per request and cost within 5%, p50
    // and p90 within max(15%, 5 ms), p99 within 25%. They rest on shared
    // draw keys: the provider's luck per try (the draw-key header) and the
    // core's jitter per (request, attempt) (`policy::draws`), so a request
    // that goes differently live does not reshuffle the luck of the others.
    // Measured over six runs on a shared 2-core machine with the earlier
    // draws (sim: 74.51% success, 2.168 attempts/request, p50 322 ms, p90
    // 641 ms, p99 1.63 s, $0.1100): live 73.87-74.13%, 2.176-2.254, p50
    // 327-337 ms, p90 667-689 ms, p99 1.64-1.75 s, $0.1069-0.1091. With the
    // draws of 2026-11-23 (825 requests; three runs): sim 69.6% success,
    // 2.377 attempts/request; live 69.7-70.2%, 2.376-2.383.
    close(
        "attempts per request",
        f(s, &["amplification"]),
        f(l, &["amplification"]),
        0.05,
    );
    close(
        "cost",
        f(s, &["cost", "nano_usd"]),
        f(l, &["cost", "nano_usd"]),
        0.05,
    );
    let latency = |what: &str, key: &str, rel: f64, floor_us: f64| {
        let (a, b) = (
            f(s, &["latency", "all", key]),
            f(l, &["latency", "all", key]),
        );
        let allowed = (rel * a.max(b)).max(floor_us);
        assert!(
            (a - b).abs() <= allowed,
            "{what}: sim {a} us vs live {b} us (allowed {allowed} us)\nsim {s}\nlive {l}"
        );
    };
    latency("p50", "p50_us", 0.15, 5_000.0);
    latency("p90", "p90_us", 0.15, 5_000.0);
    latency("p99", "p99_us", 0.25, 0.0);
    // Success within the issue's 1 point. Draw keys fix each try's luck,
    // but not which of the requests that retry at the same instant (all
    // told the same retry-after by a pool with room for one) reaches the
    // pool first: in the simulator that is the event order, live it is the
    // order the tasks reach the server, and tokio's timers fire up to 1 ms
    // late. Those few requests are a handful whatever the run's length, so
    // the scenario is dense enough (773 requests then, 825 now: one point
    // is about 8 of them) for them to stay under a point: six runs differed from the sim
    // by -0.39 to -0.65 points (3 to 5 requests). On the earlier 12 s, 243
    // request version they were -1.23 to +1.65 points (FIDELITY.md).
    let (ss, ls) = (f(s, &["success_rate"]), f(l, &["success_rate"]));
    assert!(
        (ss - ls).abs() <= 0.01,
        "success: sim {ss} vs live {ls}\nsim {s}\nlive {l}"
    );
}

#[test]
fn a_live_trace_replays_through_the_core_action_for_action() {
    let _alone = alone();
    let sc = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/trace.toml"
    ));
    let dir = std::env::temp_dir().join(format!("stormglass-trace-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = LiveOptions {
        serve: true,
        trace: Some(dir.clone()),
        ..Default::default()
    };
    live::run(&sc, &opts).expect("live run");
    let strategy = &sc.strategies[0];
    let path = dir.join(format!("{}.trace.jsonl", strategy.name));
    let events = live::trace::read(&path).expect("trace");
    let actions: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            live::trace::Event::Out { action, .. } => Some(action.as_str()),
            live::trace::Event::In { .. } => None,
        })
        .collect();
    // The run exercised what the proof is about.
    let has = |needle: &str| actions.iter().any(|a| a.contains(needle));
    assert!(has("hedge: true"), "no hedge in the trace");
    assert!(has("Cancel {"), "no cancel in the trace");
    assert!(has("attempt_no: 2"), "no retry in the trace");
    assert!(has("model: 1,"), "no fallback to the backup in the trace");
    assert!(actions.iter().filter(|a| a.starts_with("Finish")).count() >= 50);

    live::trace::replay(&sc, strategy, &events).expect("the core replays the trace exactly");

    // And a tampered trace is caught.
    let mut tampered = events.clone();
    let i = tampered
        .iter()
        .position(|e| {
            matches!(
                e,
                live::trace::Event::In {
                    input: live::trace::Input::Timeout,
                    ..
                }
            ) || matches!(
                e,
                live::trace::Event::In {
                    input: live::trace::Input::Outcome(..),
                    ..
                }
            )
        })
        .expect("an outcome or timeout input");
    tampered.remove(i);
    assert!(live::trace::replay(&sc, strategy, &tampered).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_live_fleet_limit_hands_freed_places_to_sibling_replicas_and_replays() {
    let _alone = alone();
    let sc = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/fleet-queue-live.toml"
    ));
    let dir = std::env::temp_dir().join(format!("stormglass-fleetq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = LiveOptions {
        serve: true,
        trace: Some(dir.clone()),
        ..Default::default()
    };
    let report = live::run(&sc, &opts).expect("live run");
    let s = &report.strategies[0];
    assert!(s.queued_locally > 10, "{}", s.queued_locally);
    assert_eq!(s.shed_locally, 0);
    assert!(s.success_rate > 0.99, "{}", s.success_rate);
    let strategy = &sc.strategies[0];
    let path = dir.join(format!("{}.trace.jsonl", strategy.name));
    let events = live::trace::read(&path).expect("trace");
    // The fleet's 2 places hold across the 4 replicas: an attempt takes one
    // when sent and gives it back with its outcome (a cancel's included).
    let (mut in_flight, mut most, mut rooms) = (0i64, 0i64, 0);
    for e in &events {
        match e {
            live::trace::Event::Out { action, .. } if action.starts_with("Send") => {
                in_flight += 1;
                most = most.max(in_flight);
            }
            live::trace::Event::In { input, .. } => match input {
                live::trace::Input::Outcome(..) => in_flight -= 1,
                live::trace::Input::Room => rooms += 1,
                _ => {}
            },
            live::trace::Event::Out { .. } => {}
        }
    }
    assert_eq!(most, 2);
    // Places freed by one replica went to another's older waiter.
    assert!(rooms > 5, "{rooms}");
    live::trace::replay(&sc, strategy, &events).expect("the core replays the trace exactly");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_connection_ends_in_resets_and_a_report() {
    let _alone = alone();
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    std::env::set_var("STORMGLASS_BAD_TARGET_KEY", "not-a-real-key");
    let sc = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/bad-target.toml"
    ));
    let started = std::time::Instant::now();
    let report = live::run(
        &sc,
        &LiveOptions {
            target: Some(format!("http://127.0.0.1:{port}")),
            ..Default::default()
        },
    )
    .expect("a refused target still gives a report");
    // Two seconds of arrivals with 2 s deadlines: it ends soon after.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let v = json(&report);
    let s = &v["strategies"][0];
    let requests = s["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    // Every request failed as a reset (no answer at all), after its retry.
    assert_eq!(s["successes"], 0);
    assert_eq!(s["failures"]["reset"].as_u64(), Some(requests), "{s}");
    assert_eq!(s["attempts"].as_u64(), Some(2 * requests), "{s}");
    assert_schema_valid(&v);
}

/// A loopback server that answers every request with `response` and closes
/// the connection; it serves at most 1,000 connections.
fn canned_server(response: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming().take(1000) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(response.as_bytes());
        }
    });
    port
}

#[test]
fn a_server_that_speaks_html_ends_in_malformed_answers() {
    let _alone = alone();
    let port = canned_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 27\r\nconnection: close\r\n\r\n<html><body>hi</body></html",
    );
    std::env::set_var("STORMGLASS_BAD_TARGET_KEY", "not-a-real-key");
    let sc = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/bad-target.toml"
    ));
    let report = live::run(
        &sc,
        &LiveOptions {
            target: Some(format!("http://127.0.0.1:{port}")),
            ..Default::default()
        },
    )
    .expect("an HTML target still gives a report");
    let v = json(&report);
    let s = &v["strategies"][0];
    let requests = s["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    // A 200 with a web page is no answer: never counted as a success.
    assert_eq!(s["successes"], 0, "{s}");
    assert_eq!(s["failures"]["malformed"].as_u64(), Some(requests), "{s}");
    assert_schema_valid(&v);
}

/// A loopback server that answers every request with `head_and_start`
/// and then keeps the connection open, sending nothing more, for as long
/// as the test runs.
fn endless_server(head_and_start: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut open = Vec::new();
        for conn in listener.incoming().take(1000) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(head_and_start.as_bytes());
            open.push(conn);
        }
    });
    port
}

#[test]
fn a_stream_that_never_ends_is_given_up_by_the_deadline() {
    let _alone = alone();
    let port = endless_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"lorem \"}}]}\n\n",
    );
    std::env::set_var("STORMGLASS_BAD_TARGET_KEY", "not-a-real-key");
    let sc = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/bad-target.toml"
    ));
    // Run it on a thread, so that a hang fails the test instead of CI.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = live::run(
            &sc,
            &LiveOptions {
                target: Some(format!("http://127.0.0.1:{port}")),
                ..Default::default()
            },
        );
        let _ = tx.send(r.map(|r| json(&r)));
    });
    let v = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run ended (2 s of arrivals, 1 s attempt timeouts, 2 s deadlines)")
        .expect("an endless target still gives a report");
    let s = &v["strategies"][0];
    let requests = s["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    assert_eq!(s["successes"], 0, "{s}");
    // Each request's attempts timed out; none was counted as an answer.
    let failed: u64 = s["failures"]
        .as_object()
        .expect("failures")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(failed, requests, "{s}");
    assert_schema_valid(&v);
}

const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// Connections a [`terminator`] has open now, and the most it had at once.
#[derive(Default)]
struct Connections {
    open: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

/// rustls (ring) serving the committed test certificate, signed by the
/// test CA `tests/fixtures/tls/ca.pem` (see `gen.sh` there).
fn test_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(format!("{TLS}/server.pem"))
        .expect("server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(format!("{TLS}/server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server certificate");
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// A proxy on a free loopback port in front of 127.0.0.1:`upstream`, as a
/// gateway would stand in front of a provider: with `tls` it terminates
/// TLS with the test certificate, otherwise it passes plain TCP through.
/// It counts the connections it has open; it serves at most 1,000.
fn terminator(upstream: u16, tls: bool) -> (u16, std::sync::Arc<Connections>) {
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let counts = std::sync::Arc::new(Connections::default());
    let shared = std::sync::Arc::clone(&counts);
    let acceptor = tls.then(test_acceptor);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            for _ in 0..1000 {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
                shared.most.fetch_max(open, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let shared = std::sync::Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Ok(mut up) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        match acceptor {
                            Some(a) => {
                                if let Ok(mut s) = a.accept(tcp).await {
                                    let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
                                }
                            }
                            None => {
                                let mut tcp = tcp;
                                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                            }
                        }
                    }
                    shared.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    });
    (port, counts)
}

/// Starts the mock provider for `path` (as `--serve` would) and returns it
/// with its port.
fn mock_provider(path: &str, sc: &Scenario) -> (stormglass::serve::MockProvider, u16) {
    let m = stormglass::serve::MockProvider::start(
        Path::new(path),
        &["--seed".into(), sc.seed.to_string().into()],
    )
    .expect("mock provider starts");
    let port = m
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the mock provider's URL");
    (m, port)
}

#[test]
fn an_https_target_gives_the_same_figures_as_plain_http() {
    let _alone = alone();
    let sc = load(MOCK);
    let (mock, port) = mock_provider(MOCK, &sc);
    let (tls_port, _) = terminator(port, true);
    let out = std::env::temp_dir().join(format!("stormglass-https-{}", std::process::id()));
    // Through the command line, as a user would.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_stormglass"))
        .args(["live", MOCK, "--duration", "4s", "--json", "--target"])
        .arg(format!("https://127.0.0.1:{tls_port}"))
        .arg("--ca-cert")
        .arg(format!("{TLS}/ca.pem"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("stormglass runs");
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let https: Value = serde_json::from_slice(&run.stdout).expect("report JSON");
    assert_schema_valid(&https);
    // The mock provider is recognised through TLS: fresh world, draw keys.
    assert_eq!(https["live"]["mock_provider"], true);
    let plain = json(
        &live::run(
            &sc,
            &LiveOptions {
                target: Some(mock.url.clone()),
                duration: Some(4 * SECS),
                ..Default::default()
            },
        )
        .expect("plain http run"),
    );
    let (a, b) = (&https["strategies"][0], &plain["strategies"][0]);
    for figure in ["requests", "successes", "attempts", "cost", "success_rate"] {
        assert_eq!(a[figure], b[figure], "{figure}: https {a}\nhttp {b}");
    }
    assert!(a["successes"].as_u64().is_some_and(|n| n >= 2), "{a}");
}

#[test]
fn an_untrusted_certificate_fails_clearly() {
    let _alone = alone();
    let sc = load(MOCK);
    let (_mock, port) = mock_provider(MOCK, &sc);
    let (tls_port, _) = terminator(port, true);
    // Without --ca-cert the test CA is unknown: the run must stop at once
    // and say why (not hang, not retry a handshake that cannot succeed).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = live::run(
            &sc,
            &LiveOptions {
                target: Some(format!("https://127.0.0.1:{tls_port}")),
                duration: Some(3 * SECS),
                ..Default::default()
            },
        );
        let _ = tx.send(r.map(|_| ()).map_err(|e| format!("{e:#}")));
    });
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the run ended")
        .expect_err("an untrusted certificate is an error");
    assert!(err.contains("not trusted"), "{err}");
    assert!(err.contains("--ca-cert"), "{err}");
    // A CA file that is not one is refused up front, with its name.
    let bad = live::run(
        &load(MOCK),
        &LiveOptions {
            target: Some(format!("https://127.0.0.1:{tls_port}")),
            ca_cert: Some(format!("{TLS}/gen.sh").into()),
            ..Default::default()
        },
    )
    .expect_err("a CA file without certificates");
    assert!(format!("{bad:#}").contains("gen.sh"), "{bad:#}");
}

#[test]
fn connections_are_bounded_and_the_wait_is_counted() {
    let _alone = alone();
    const SLOW: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/slow-target.toml"
    );
    let sc = load(SLOW);
    let (_mock, port) = mock_provider(SLOW, &sc);
    // A plain pass-through in front of the mock provider, counting sockets.
    let (proxy, conns) = terminator(port, false);
    let report = live::run(
        &sc,
        &LiveOptions {
            target: Some(format!("http://127.0.0.1:{proxy}")),
            max_connections: Some(3),
            ..Default::default()
        },
    )
    .expect("live run");
    let v = json(&report);
    assert_schema_valid(&v);
    assert_eq!(v["live"]["max_connections"], 3);
    let driver = &v["live"]["strategies"][0];
    let s = &v["strategies"][0];
    let requests = s["requests"].as_u64().expect("requests");
    // About 40 requests of 300 ms each in two seconds, over 3 connections
    // (10 answers a second): most had to wait, and none failed for it.
    assert!(requests >= 10, "{s}");
    assert_eq!(s["successes"], s["requests"], "{s}");
    let waits = driver["connection_waits"].as_u64().expect("waits");
    assert!(waits >= requests / 2, "{driver}");
    let wait_p99 = driver["connection_wait_p99_ns"].as_u64().expect("p99");
    assert!(wait_p99 >= 300_000_000, "{driver}");
    // The target never saw more than three connections at once (the
    // driver's admin calls come before the run, on the same pool).
    let most = conns.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} connections at once");
    // The wait is inside the latency, counted from the schedule: the slowest
    // request took far longer than one 300 ms answer.
    let p99 = s["latency"]["all"]["p99_us"].as_u64().expect("p99");
    assert!(
        p99 >= 300_000 + wait_p99 / 1000 / 2,
        "p99 {p99} us, {driver}"
    );
}

#[test]
fn an_anthropic_account_out_of_credit_fails_at_once() {
    let _alone = alone();
    const CREDIT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/anthropic-credit.toml"
    );
    let sc = load(CREDIT);
    let m = stormglass::serve::MockProvider::start(
        Path::new(CREDIT),
        &[
            "--seed".into(),
            sc.seed.to_string().into(),
            "--fail-first".into(),
            "100000".into(),
            "--fail-first-with".into(),
            "insufficient_quota".into(),
        ],
    )
    .expect("mock provider starts");
    let v = json(
        &live::run(
            &sc,
            &LiveOptions {
                target: Some(m.url.clone()),
                ..Default::default()
            },
        )
        .expect("live run"),
    );
    let s = &v["strategies"][0];
    let requests = s["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{s}");
    // Anthropic's 400 "credit balance is too low" is the core's fatal
    // `insufficient_quota`: every request fails on its first attempt, with
    // no retry (a rate limit would have been retried twice).
    assert_eq!(
        s["failures"]["quota_exhausted"].as_u64(),
        Some(requests),
        "{s}"
    );
    assert_eq!(s["attempts"].as_u64(), Some(requests), "{s}");
    // Counted as the model's and the key's errors, not as rate limits.
    let (model, key) = (&s["models"][0], &s["keys"][0]);
    assert_eq!(model["rate_limited"], 0, "{model}");
    assert_eq!(model["errors"].as_u64(), Some(requests), "{model}");
    assert_eq!(key["rate_limited"], 0, "{key}");
}

#[test]
fn a_reasoning_models_token_limit_is_sent_as_max_completion_tokens() {
    let _alone = alone();
    // The mock provider's "fast" model, declared as a reasoning model: the
    // driver sends `max_completion_tokens` (the unit test in live/http.rs
    // checks the body), and the mock provider, like OpenAI, takes it.
    let text = std::fs::read_to_string(MOCK).expect("scenario");
    let text = text.replacen(
        "name = \"fast\"\n",
        "name = \"fast\"\n  max_tokens_field = \"max_completion_tokens\"\n",
        1,
    );
    let sc = scenario::load_str(Path::new(MOCK), &text).expect("scenario loads");
    assert_eq!(
        sc.world.models[0].max_tokens_field,
        stormglass::wire::MaxTokensField::MaxCompletionTokens
    );
    let v = json(
        &live::run(
            &sc,
            &LiveOptions {
                serve: true,
                duration: Some(2 * SECS),
                ..Default::default()
            },
        )
        .expect("live run"),
    );
    let s = &v["strategies"][0];
    assert!(s["requests"].as_u64().is_some_and(|n| n >= 1), "{s}");
    assert_eq!(s["success_rate"], 1.0, "{s}");
}

/// A canned answer with `content_type` and `body`, closing the connection.
fn canned_answer(content_type: &str, body: &str) -> u16 {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    canned_server(Box::leak(response.into_boxed_str()))
}

#[test]
fn an_answer_under_the_wrong_content_type_is_read_as_the_sdks_read_it() {
    let _alone = alone();
    std::env::set_var("STORMGLASS_BAD_TARGET_KEY", "not-a-real-key");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/bad-target.toml"
    );
    let text = std::fs::read_to_string(path).expect("scenario");
    let run = |sc: &Scenario, port: u16| {
        let v = json(
            &live::run(
                sc,
                &LiveOptions {
                    target: Some(format!("http://127.0.0.1:{port}")),
                    ..Default::default()
                },
            )
            .expect("a report"),
        );
        v["strategies"][0].clone()
    };
    // openai-python parses a whole answer as JSON whatever its content type
    // says (`_response.py`: not `*json` -> try `response.json()`): a chat
    // completion labelled text/plain is an answer.
    let port = canned_answer(
        "text/plain; charset=utf-8",
        r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
    );
    let s = run(&load(path), port);
    let requests = s["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    assert_eq!(s["successes"].as_u64(), Some(requests), "{s}");
    // A stream is read as server-sent events whatever its content type
    // (the SDKs' Stream does not look at it): an SSE stream labelled
    // application/json is an answer, first token and all.
    let streaming = text.replacen(
        r#"timeouts = { total = "1s" }"#,
        r#"timeouts = { total = "1s", first_token = "900ms" }"#,
        1,
    );
    assert_ne!(streaming, text, "the strategy streams");
    let sc = scenario::load_str(Path::new(path), &streaming).expect("scenario loads");
    let port = canned_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hello \"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"world\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
    );
    let s = run(&sc, port);
    let requests = s["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    assert_eq!(s["successes"].as_u64(), Some(requests), "{s}");
    assert!(
        s["latency"]["ttft"]["count"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{s}"
    );
}
