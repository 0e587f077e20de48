//! SLO verdicts, burn-rate alerts, `[[expect]]` thresholds and the CI gate
//! (`stormglass check`, `diff`), on whole runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use stormglass::scenario::load_str;
use stormglass::units::SECS;
use support::{load, run, strategy};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stormglass"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stormglass-gate-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small scenario: 2 minutes at 20 requests/s, 5% of first tries fail
/// with a reset (retried), one retry; `extra` is appended.
fn small(extra: &str) -> String {
    format!(
        r#"[run]
duration = "2m"
warmup = "10s"

[[provider]]
name = "openai"

  [[provider.model]]
  name = "gpt-4o-mini"
  input_per_mtok = 0.15
  output_per_mtok = 0.60
  ttft = {{ median = "300ms", p99 = "1s" }}
  tokens_per_s = {{ median = 90, p1 = 30 }}
  faults = {{ reset = 0.05 }}

[traffic]
rate = 20
deadline = "20s"

  [[traffic.task]]
  name = "classification"
  input_tokens = {{ median = 400, p99 = 2000 }}
  output_tokens = {{ median = 20, p99 = 80 }}

[[strategy]]
name = "one-retry"
routing = {{ default = "gpt-4o-mini" }}
retry = {{ max_retries = 1, base = "100ms", cap = "1s" }}

[[strategy]]
name = "no-retry"
routing = {{ default = "gpt-4o-mini" }}
retry = {{ max_retries = 0 }}
{extra}"#
    )
}

#[test]
fn retry_storm_pages_after_the_cut_and_keeps_paging_while_the_storm_lasts() {
    let r = run(&load("retry-storm.toml"));
    let cut = 240 * SECS;
    for name in ["fixed-no-jitter", "full-jitter", "fixed-with-budget"] {
        let s = strategy(&r, name);
        let slo = s.slo.as_ref().expect("retry-storm has an [slo]");
        let avail = &slo.objectives[0];
        assert_eq!(avail.name, "availability");
        assert!(!avail.met, "{name}");
        let page = &avail.alerts[0];
        assert_eq!(page.name, "1h/5m at 14.4x");
        assert_eq!(page.times_fired, 1, "{name}");
        // The page fires within half a minute of the quota cut, never before.
        let at = page.firings[0].at_ns;
        assert!(
            (cut..cut + 30 * SECS).contains(&at),
            "{name}: fired at {at}"
        );
    }
    // The fixed strategy's storm outlives the cut: the page is still firing
    // when the series ends.
    let fixed = strategy(&r, "fixed-no-jitter");
    let slo = fixed.slo.as_ref().unwrap();
    let end = fixed.series.start_ns + fixed.series.bucket_ns * fixed.series.successes.len() as u64;
    assert_eq!(slo.objectives[0].alerts[0].firings[0].until_ns, end);
    // Far more requests fail than a p99 allows: no latency meets it.
    assert_eq!(slo.latency_at_quantile_us, None);
    // Goodput: a third of the jitter strategy's.
    let full = strategy(&r, "full-jitter")
        .slo
        .as_ref()
        .unwrap()
        .goodput_rps;
    assert!(
        slo.goodput_rps < full * 0.6,
        "{} vs {full}",
        slo.goodput_rps
    );
    // The all-requests p99 makes the fixed strategy look faster; the SLO
    // latency (failures as misses) does not.
    assert!(fixed.latency.all.p99_us < strategy(&r, "full-jitter").latency.all.p99_us);
    let ok_within = |n: &str| strategy(&r, n).slo.as_ref().unwrap().objectives[1].actual;
    assert!(ok_within("fixed-no-jitter") < ok_within("full-jitter") - 0.3);
}

#[test]
fn goodput_and_objectives_add_up() {
    let sc = load_str(
        Path::new("small.toml"),
        &small("[slo]\navailability = 0.99\nlatency = \"3s\"\nerror_rate = 0.02\n"),
    )
    .unwrap();
    let r = run(&sc);
    let retry = strategy(&r, "one-retry");
    let none = strategy(&r, "no-retry");
    let (sr, sn) = (retry.slo.as_ref().unwrap(), none.slo.as_ref().unwrap());
    // About 5% of requests fail without a retry, about 0.25% with one.
    assert!(sr.objectives[0].met && !sn.objectives[0].met);
    assert_eq!(sn.objectives[0].total, none.requests);
    assert_eq!(sn.objectives[0].good, none.successes);
    // The error-rate objective sees the attempts, retried or not: both miss it.
    assert!(!sr.objectives[2].met && !sn.objectives[2].met);
    assert_eq!(sr.objectives[2].total, retry.attempts);
    // Goodput is what met the latency objective, per second of the measured run.
    let good = sr.objectives[1].good as f64;
    assert!(
        (sr.goodput_rps - good / 110.0).abs() < 1e-3,
        "{}",
        sr.goodput_rps
    );
    // Only successes can meet it (compared as counts: the rate is rounded
    // to six decimals, which can land above successes / 110 when every
    // success was fast enough, as on this seed).
    assert!(sr.objectives[1].good <= retry.successes);
    assert!(sr.goodput_rps <= retry.successes as f64 / 110.0 + 1e-6);
    // The series of good requests adds up to the objective's count.
    let series: u64 = retry
        .series
        .slo_good
        .as_ref()
        .unwrap()
        .iter()
        .map(|&x| u64::from(x))
        .sum();
    assert_eq!(series, sr.objectives[1].good);
    // Without [slo], nothing is judged.
    let plain = run(&load_str(Path::new("plain.toml"), &small("")).unwrap());
    assert!(plain.strategies.iter().all(|s| s.slo.is_none()));
}

#[test]
fn slo_and_expect_mistakes_are_placed_and_explained() {
    let e = load_str(
        Path::new("t.toml"),
        &small("[slo]\n[[slo.alert]]\nlong = \"5m\"\nshort = \"1h\"\nburn_rate = 14.4\n"),
    )
    .expect_err("short > long");
    assert!(e.message.contains("short window is longer"), "{e}");
    assert!(e.line > 0);
    let e = load_str(
        Path::new("t.toml"),
        &small("[[expect]]\nstrategy = \"one-retyr\"\np99 = \"< 2s\"\n"),
    )
    .expect_err("unknown strategy");
    assert!(e.message.contains("unknown strategy `one-retyr`"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `one-retry`"),
        "{e}"
    );
    let e =
        load_str(Path::new("t.toml"), &small("[[expect]]\np99 = \"< 2\"\n")).expect_err("no unit");
    assert!(e.message.contains("p99"), "{e}");
    assert_eq!(e.line, 35, "{e}");
    let e = load_str(
        Path::new("t.toml"),
        &small("[[expect]]\nsuccess = \"about 0.9\"\n"),
    )
    .expect_err("no operator");
    assert!(e.message.contains("does not start with"), "{e}");
    let e = load_str(
        Path::new("t.toml"),
        &small("[[expect]]\ngoodput = \"> 1\"\n"),
    )
    .expect_err("needs slo");
    assert!(e.message.contains("needs an [slo]"), "{e}");
    let e = load_str(
        Path::new("t.toml"),
        &small("[[expect]]\np99 = \"< 2s\"\nsucess = \"> 0.9\"\n"),
    )
    .expect_err("typo");
    assert!(e.hint.as_deref().unwrap_or("").contains("`success`"), "{e}");
}

/// Runs the small scenario with `expect` and returns `check`'s exit code and output.
fn gate(tag: &str, expect: &str, extra_args: &[&str]) -> (Option<i32>, String) {
    let dir = temp_dir(tag);
    let f = dir.join("s.toml");
    std::fs::write(&f, small(expect)).unwrap();
    let out = bin()
        .arg("run")
        .arg(&f)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .arg("check")
        .arg(dir.join("report.json"))
        .args(extra_args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_gate_fails_when_a_threshold_is_crossed_and_passes_when_not() {
    // Measure where the figures are, then set thresholds on either side.
    let sc = load_str(Path::new("small.toml"), &small("")).unwrap();
    let r = run(&sc);
    let s = strategy(&r, "no-retry");
    let success = s.success_rate;
    let p50_ms = s.latency.all.p50_us / 1000;
    let pass = format!(
        "[[expect]]\nstrategy = \"no-retry\"\nsuccess = \"> {}\"\np50 = \"< {}ms\"\n",
        success - 0.01,
        p50_ms + 50
    );
    let (code, out) = gate("pass", &pass, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("✓ success >") && out.contains("PASS: 2 checks passed"),
        "{out}"
    );
    let fail = format!(
        "[[expect]]\nstrategy = \"no-retry\"\nsuccess = \"> {}\"\np50 = \"< {}ms\"\n",
        success + 0.001,
        p50_ms + 50
    );
    let (code, out) = gate("fail", &fail, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("✗ success >") && out.contains("✓ p50 <"),
        "{out}"
    );
    assert!(out.contains("FAIL: 1 of 2 checks failed"), "{out}");
    // Every strategy (no `strategy` key): the retrying one passes, the other fails.
    let (code, out) = gate("all", "[[expect]]\nsuccess = \"> 0.99\"\n", &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("one-retry\n    ✓ success") && out.contains("no-retry\n    ✗ success"),
        "{out}"
    );
}

#[test]
fn the_baseline_gate_catches_a_worse_policy_and_passes_an_unchanged_one() {
    let dir = temp_dir("baseline");
    let base = dir.join("baselines").join("small.json");
    let (code, out) = gate(
        "b1",
        "",
        &["--baseline", base.to_str().unwrap(), "--update-baseline"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(base.exists());
    // Same scenario, same binary: identical figures.
    let (code, out) = gate("b2", "", &["--baseline", base.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("every baseline figure is identical"), "{out}");
    // A policy change that drops the retry makes `one-retry` fail more.
    let dir3 = temp_dir("b3");
    let f = dir3.join("s.toml");
    std::fs::write(
        &f,
        small("").replace("max_retries = 1,", "max_retries = 0,"),
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&f)
        .arg("--out")
        .arg(&dir3)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = bin()
        .arg("check")
        .arg(dir3.join("report.json"))
        .arg("--baseline")
        .arg(&base)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("✗ success") && text.contains("worse by more than 5%"),
        "{text}"
    );
    // diff shows both side by side and says which way it moved.
    let out = bin()
        .arg("diff")
        .arg(
            dir.join("..")
                .join(format!("stormglass-gate-b2-{}", std::process::id()))
                .join("report.json"),
        )
        .arg(dir3.join("report.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("one-retry") && text.contains("worse"),
        "{text}"
    );
}
