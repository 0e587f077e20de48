//! Clients no one here wrote: the official OpenAI and Anthropic Python SDKs
//! (versions pinned in `tests/sdk/requirements.txt`) against the
//! `mock-provider` binary on a loopback port. The SDKs' own retry logic
//! must see the 429s, 529s and `retry-after` the server sends: the
//! requests the server logs, and the `x-stainless-retry-count` each SDK
//! sends, match the retries the SDK reports.
//!
//! The SDKs are installed into a virtual environment under Cargo's target
//! directory on first use (python3 and PyPI are needed, nothing else).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A virtual environment with the pinned SDKs, made once.
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv");
    let py = venv.join("bin/python");
    let requirements = Path::new(DIR).join("requirements.txt");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return py;
    }
    let python3 = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        Command::new(&python3)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install of the SDKs",
    );
    std::fs::write(&stamp, wanted).expect("stamp");
    py
}

struct Server {
    child: Child,
    url: String,
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-provider"))
        .args([
            "--scenario",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/mock.toml"),
        ])
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mock-provider");
    let stdout = child.stdout.take().expect("stdout");
    let mut stdout = BufReader::new(stdout);
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a first line");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = first
        .trim()
        .strip_prefix("mock-provider listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let stderr = child.stderr.take().expect("stderr");
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Server { child, url, log }
}

#[test]
fn the_official_sdks_see_the_faults_and_retry_as_told() {
    let py = python();
    let server = start_server();
    let started = Instant::now();
    let out = Command::new(&py)
        .arg(Path::new(DIR).join("clients.py"))
        .arg(&server.url)
        .output()
        .expect("run the SDK script");
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let cases: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or_else(|| panic!("no case {name} in {cases:?}"))
            .clone()
    };

    let retry = case("openai-retry");
    assert_eq!(retry["retries_taken"], 2, "{retry}");
    assert_eq!(retry["completion_tokens"], 20, "{retry}");
    // retry-after: 1 (and retry-after-ms ~1000) on each 429, honoured.
    assert!(
        retry["seconds"].as_f64().is_some_and(|s| s >= 1.9),
        "{retry}"
    );
    let stream = case("openai-stream");
    assert_eq!(stream["words"], 20, "{stream}");
    assert_eq!(stream["usage"], 20, "{stream}");
    let limited = case("openai-429");
    assert_eq!(limited["raised"], "RateLimitError", "{limited}");
    assert_eq!(limited["code"], "rate_limit_exceeded", "{limited}");
    assert_eq!(limited["retry_after"], "1", "{limited}");
    let quota = case("openai-quota");
    assert_eq!(quota["code"], "insufficient_quota", "{quota}");
    let retry = case("anthropic-retry");
    assert_eq!(retry["retries_taken"], 2, "{retry}");
    assert_eq!(retry["output_tokens"], 20, "{retry}");
    let stream = case("anthropic-stream");
    assert_eq!(stream["stop_reason"], "end_turn", "{stream}");
    assert_eq!(stream["words"], 20, "{stream}");
    let broken = case("anthropic-broken");
    assert_eq!(broken["raised"], "APIStatusError", "{broken}");
    assert_eq!(broken["error_type"], "overloaded_error", "{broken}");

    // The server's side: every request the SDKs made, in order.
    std::thread::sleep(Duration::from_millis(200));
    let logged: Vec<Value> = server
        .log
        .try_iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let seen: Vec<(String, u64, u64)> = logged
        .iter()
        .map(|l| {
            (
                l["endpoint"].as_str().unwrap_or("").to_string(),
                l["status"].as_u64().unwrap_or(0),
                l["client_retry"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    let e = |ep: &str, status: u64, retry: u64| (ep.to_string(), status, retry);
    let chat = "chat_completions";
    let msgs = "messages";
    assert_eq!(
        seen,
        [
            // openai-retry: two 429s, then the answer; the SDK counts its retries.
            e(chat, 429, 0),
            e(chat, 429, 1),
            e(chat, 200, 2),
            e(chat, 200, 0), // openai-stream
            e(chat, 429, 0), // openai-429, max_retries=0
            e(chat, 429, 0), // insufficient_quota: x-should-retry false, not retried
            e(msgs, 529, 0), // anthropic-retry: two 529s, then the answer
            e(msgs, 529, 1),
            e(msgs, 200, 2),
            e(msgs, 200, 0), // anthropic-stream
            e(msgs, 200, 0), // anthropic-broken: 200, then an error event
        ],
        "{logged:#?}"
    );
    assert_eq!(
        logged.last().map(|l| l["fault"].clone()),
        Some("broken_stream".into())
    );
}
