//! The `stormglass` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stormglass"))
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stormglass-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn validate_accepts_a_good_file() {
    let out = bin()
        .arg("validate")
        .arg(scenario("provider-outage.toml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(": ok (2 providers, 2 models, 1 incidents, 3 tasks, 4 strategies)"),
        "{stdout}"
    );
}

#[test]
fn validate_points_at_the_mistake() {
    let dir = temp_dir("bad");
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[run]\nduration = \"10m\"\nwarmpu = \"1m\"\n").unwrap();
    let out = bin().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(
        stderr.contains("bad.toml:3:1: unknown field `warmpu`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `warmup`"), "{stderr}");
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let out = bin().args(["run", "no/such/file.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the file"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn run_prints_the_table_and_writes_the_report() {
    let dir = temp_dir("run");
    let out = bin()
        .arg("run")
        .arg(scenario("retry-storm.toml"))
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "strategy",
        "success",
        "attempts/req",
        "p99.9",
        "USD/1k ok",
        "fixed-no-jitter",
        "full-jitter",
        "decorrelated-jitter",
    ] {
        assert!(stdout.contains(needle), "missing {needle} in\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["scenario"]["seed"], 42);
    assert_eq!(report["strategies"].as_array().unwrap().len(), 5);

    // --json prints the same report, and --seed changes it.
    let json = bin()
        .arg("run")
        .arg(scenario("retry-storm.toml"))
        .arg("--out")
        .arg(&dir)
        .arg("--json")
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(again, report);
    let other = bin()
        .arg("run")
        .arg(scenario("retry-storm.toml"))
        .args(["--seed", "7", "--json", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let other: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_eq!(other["scenario"]["seed"], 7);
    assert_ne!(other["strategies"], report["strategies"]);
}

#[test]
fn bad_flags_are_refused_by_the_parser() {
    let out = bin()
        .arg("run")
        .arg(scenario("retry-storm.toml"))
        .args(["--threads", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

#[test]
fn serve_runs_the_mock_provider_for_a_scenario() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    // `serve` run by Cargo (which sets CARGO) builds mock-provider first,
    // with the dev profile, as `cargo run` does: a dev build of the whole
    // crate, over a minute of CI. `cargo test --workspace` has built the
    // binary already (for mock-provider's own tests), beside stormglass's:
    // then `serve` runs without CARGO and takes that one. Where there is
    // none yet (`cargo test --test cli` on a fresh clone), `serve` builds it.
    let beside = Path::new(env!("CARGO_BIN_EXE_stormglass"))
        .with_file_name(format!("mock-provider{}", std::env::consts::EXE_SUFFIX));
    let mut serve = bin();
    if beside.exists() {
        serve.env_remove("CARGO");
    }
    let mut child = serve
        .args(["serve"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mock-provider/tests/scenarios/mock.toml"
        ))
        .args(["--port", "0", "--log", "off"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start stormglass serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("mock-provider listening on http://")
        .unwrap_or_else(|| panic!("unexpected: {line}"))
        .to_string();
    let mut c = std::net::TcpStream::connect(&addr).expect("connect");
    c.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("claude-one-slot"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();

    // A bad scenario is reported by stormglass, before anything starts.
    let out = bin()
        .args(["serve", "no/such/file.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.toml"));
}

#[test]
fn live_refuses_a_remote_target_without_leave_and_a_cost_cap() {
    let out = bin()
        .args(["live"])
        .arg(scenario("retry-storm.toml"))
        .args(["--target", "http://10.11.12.13:8080"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
    let out = bin()
        .args(["live"])
        .arg(scenario("retry-storm.toml"))
        .args(["--target", "http://10.11.12.13:8080", "--allow-remote"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-cost"));
}
