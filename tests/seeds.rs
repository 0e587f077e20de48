//! `run --seeds N`: means and 95% intervals over seeds, and paired
//! per-seed differences between strategies.

use std::path::Path;

use stormglass::report::seeds::{aggregate, Figure, SeedsReport};
use stormglass::scenario::{load_str, Scenario};

/// Two minutes at 20 requests/s; 5% of tries are reset. `no-retry-copy` is
/// `no-retry` under another name: with common random numbers it must come
/// out identical, seed by seed.
const SCENARIO: &str = r#"
[run]
duration = "2m"
warmup = "10s"
seed = 100

[[provider]]
name = "openai"

  [[provider.model]]
  name = "gpt-4o-mini"
  input_per_mtok = 0.15
  output_per_mtok = 0.60
  faults = { reset = 0.05 }

[traffic]
rate = 20
deadline = "20s"

  [[traffic.task]]
  name = "classification"
  input_tokens = { median = 400, p99 = 2000 }
  output_tokens = { median = 20, p99 = 80 }

[[strategy]]
name = "no-retry"
routing = { default = "gpt-4o-mini" }
retry = { max_retries = 0 }

[[strategy]]
name = "one-retry"
routing = { default = "gpt-4o-mini" }
retry = { max_retries = 1, base = "100ms", cap = "1s" }

[[strategy]]
name = "no-retry-copy"
routing = { default = "gpt-4o-mini" }
retry = { max_retries = 0 }
"#;

fn seeds(n: u64) -> SeedsReport {
    let sc: Scenario = load_str(Path::new("seeds.toml"), SCENARIO).unwrap();
    let runs: Vec<Scenario> = (0..n).map(|k| sc.with_seed(sc.seed + k)).collect();
    let reports: Vec<_> = stormglass::sim::run_seeds(&runs, 2)
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    aggregate(&reports)
}

fn figure<'a>(s: &'a SeedsReport, strategy: &str, metric: &str) -> &'a Figure {
    s.strategies
        .iter()
        .find(|x| x.name == strategy)
        .and_then(|x| x.figures.iter().find(|f| f.metric == metric))
        .unwrap_or_else(|| panic!("{strategy}/{metric}"))
}

#[test]
fn the_interval_shrinks_as_seeds_grow() {
    // With 4 seeds the interval's own width is noisy (Student's t with 3
    // degrees of freedom over a sample deviation of three), so the test asks
    // for 32: expected about a quarter of the 4-seed width, and narrower than
    // three quarters of it unless the 4 seeds agree by rare luck.
    let (few, many) = (seeds(4), seeds(32));
    assert_eq!(few.seeds, vec![100, 101, 102, 103]);
    assert_eq!(many.seeds.len(), 32);
    for metric in ["success", "p50", "amplification"] {
        let a = figure(&few, "one-retry", metric).estimate;
        let b = figure(&many, "one-retry", metric).estimate;
        let (ha, hb) = (a.ci95.unwrap(), b.ci95.unwrap());
        assert!(
            hb < ha * 0.75,
            "{metric}: ±{ha} with 4 seeds, ±{hb} with 16"
        );
    }
    // About 5% of requests fail without retries, whatever the seed.
    let s = figure(&many, "no-retry", "success").estimate;
    assert!((s.mean - 0.95).abs() < 0.01, "{s:?}");
}

#[test]
fn paired_differences_tell_a_real_difference_from_noise() {
    let s = seeds(8);
    assert_eq!(s.reference, "no-retry");
    // One retry lifts success by about 5 points on every seed.
    let d = figure(&s, "one-retry", "success")
        .vs_reference
        .as_ref()
        .unwrap();
    assert_eq!(d.verdict, "better");
    assert!((0.03..0.07).contains(&d.estimate.mean), "{:?}", d.estimate);
    // The same policy under another name: identical on every seed (common
    // random numbers).
    let twin = figure(&s, "no-retry-copy", "success")
        .vs_reference
        .as_ref()
        .unwrap();
    assert_eq!(twin.verdict, "no difference");
    assert_eq!(twin.estimate.mean, 0.0);
    // The reference has no difference with itself.
    assert!(figure(&s, "no-retry", "success").vs_reference.is_none());
}

#[test]
fn run_with_seeds_writes_the_summary() {
    let dir = std::env::temp_dir().join(format!("stormglass-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("s.toml");
    std::fs::write(&f, SCENARIO).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stormglass"))
        .arg("run")
        .arg(&f)
        .args(["--seeds", "3", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 seeds (100..=102), mean ± 95% confidence interval"),
        "{stdout}"
    );
    assert!(
        stdout.contains("paired per-seed differences against no-retry"),
        "{stdout}"
    );
    assert!(stdout.contains("(no difference)"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("seeds.json")).unwrap()).unwrap();
    assert_eq!(json["seeds"], serde_json::json!([100, 101, 102]));
    assert!(dir.join("seeds.md").exists());
}
