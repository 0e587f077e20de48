//! Traffic sources and the run settings that shape the figures: rate
//! profiles, bursts, runaway loops, other tenants, warm-up.

use std::path::Path;

use stormglass::report::Report;
use stormglass::scenario::{load_str, Scenario};
use stormglass::sim::traffic;

const BASE: &str = r#"
[run]
seed = 5
duration = "2m"

[[provider]]
name = "p"
  [[provider.pool]]
  name = "org"
  rpm = 600
  burst = "1s"
  [[provider.key]]
  name = "mine"
  pool = "org"
  [[provider.key]]
  name = "theirs"
  pool = "org"
  [[provider.model]]
  name = "m"
  input_per_mtok = 1.0
  output_per_mtok = 2.0
  ttft = { median = "200ms", p99 = "500ms" }

[traffic]
rate = 4
deadline = "20s"
  [[traffic.task]]
  name = "chat"
  input_tokens = { median = 500, p99 = 1000 }
  output_tokens = { median = 50, p99 = 100 }
  max_tokens = 200
  [[traffic.task]]
  name = "batch"
  weight = 0
  input_tokens = { median = 2000, p99 = 4000 }
  output_tokens = { median = 500, p99 = 1000 }
  max_tokens = 1000

[[strategy]]
name = "s"
routing = { default = "m" }
keys = { p = ["mine"] }
"#;

fn scenario(extra: &str) -> Scenario {
    let text = BASE.replace("[[strategy]]", &format!("{extra}\n[[strategy]]"));
    load_str(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn with_run(run: &str) -> Scenario {
    let text = BASE.replace("seed = 5\nduration = \"2m\"", run);
    load_str(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn run(sc: &Scenario) -> Report {
    stormglass::sim::run(sc, 1).unwrap().0
}

fn arrivals(sc: &Scenario) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for mut src in traffic::sources(sc) {
        while let Some(a) = src.next(sc, sc.duration) {
            out.push(a);
        }
    }
    out
}

#[test]
fn a_steady_rate_brings_about_rate_times_duration() {
    let sc = scenario("");
    let n = arrivals(&sc).len() as f64;
    // 4/s for 120 s: 480, Poisson spread (sd about 22).
    assert!((n - 480.0).abs() < 80.0, "{n}");
    assert_eq!(run(&sc).strategies[0].requests, n as u64);
}

#[test]
fn a_profile_is_followed() {
    let mut sc = scenario("");
    // 0 to 20/s over the first minute, then flat at 20/s.
    sc.traffic.profile = vec![(0, 0.0), (60 * stormglass::units::SECS, 20.0)];
    let a = arrivals(&sc);
    let first = a
        .iter()
        .filter(|(t, _)| *t < 60 * stormglass::units::SECS)
        .count() as f64;
    let second = (a.len() as f64) - first;
    assert!((first - 600.0).abs() < 100.0, "ramp: {first}");
    assert!((second - 1200.0).abs() < 150.0, "flat: {second}");
}

#[test]
fn a_burst_adds_exactly_its_requests_in_its_window() {
    let plain = arrivals(&scenario(""));
    let text = BASE.replace(
        "rate = 4\n",
        "rate = 4\nburst = [{ at = \"30s\", requests = 300, over = \"2s\" }]\n",
    );
    let sc = load_str(Path::new("t.toml"), &text).unwrap();
    let with = arrivals(&sc);
    assert_eq!(with.len(), plain.len() + 300);
    let s = stormglass::units::SECS;
    let in_window = with
        .iter()
        .filter(|(t, _)| *t >= 30 * s && *t < 32 * s)
        .count();
    assert!(in_window >= 300);
}

#[test]
fn a_runaway_loop_sends_at_its_fixed_rate_and_costs_money() {
    let plain = scenario("");
    let loopy = scenario(
        "[[traffic.runaway]]\nrate = 10\ntask = \"batch\"\nstart = \"30s\"\nend = \"90s\"\n",
    );
    let (a, b) = (run(&plain), run(&loopy));
    assert_eq!(b.strategies[0].requests, a.strategies[0].requests + 600);
    assert!(b.strategies[0].cost.nano_usd > 2 * a.strategies[0].cost.nano_usd);
    // The loop's requests are the task it names: long prompts.
    assert!(b.strategies[0].tokens.input > a.strategies[0].tokens.input + 600 * 1000);
}

#[test]
fn another_tenant_on_the_pool_takes_its_share() {
    let alone = run(&scenario(""));
    let shared = run(&scenario(
        "[[traffic.tenant]]\nname = \"reports-team\"\nrate = 9\nmodel = \"m\"\nkey = \"theirs\"\n",
    ));
    let (a, b) = (&alone.strategies[0], &shared.strategies[0]);
    assert!(a.tenants.is_empty());
    assert_eq!(b.tenants.len(), 1);
    let t = &b.tenants[0];
    assert_eq!(t.name, "reports-team");
    assert!(t.requests > 900 && t.attempts >= t.requests, "{t:?}");
    // 4/s + 9/s on a 10/s pool: our requests now meet 429s and retry.
    assert_eq!(a.requests, b.requests, "the tenant's requests are not ours");
    assert!(
        b.amplification > a.amplification + 0.1,
        "{} vs {}",
        b.amplification,
        a.amplification
    );
    let limited = |s: &stormglass::report::StrategyReport| {
        s.models.iter().map(|m| m.rate_limited).sum::<u64>()
    };
    assert!(limited(b) > 10 * (limited(a) + 1));
}

#[test]
fn warm_up_requests_are_left_out_of_the_figures() {
    let all = with_run("seed = 5\nduration = \"2m\"");
    let warm = with_run("seed = 5\nduration = \"2m\"\nwarmup = \"1m\"");
    let before = arrivals(&all)
        .iter()
        .filter(|(t, _)| *t < 60 * stormglass::units::SECS)
        .count() as u64;
    let (a, b) = (run(&all), run(&warm));
    assert_eq!(b.strategies[0].requests, a.strategies[0].requests - before);
    assert!(b.strategies[0].cost.nano_usd < a.strategies[0].cost.nano_usd);
    assert_eq!(b.scenario.warmup_ns, 60 * stormglass::units::SECS);
}

#[test]
fn another_seed_reseeds_the_tenants_too() {
    let sc = scenario(
        "[[traffic.tenant]]\nname = \"reports-team\"\nrate = 9\nmodel = \"m\"\nkey = \"theirs\"\n",
    );
    let other = sc.with_seed(sc.seed + 1);
    assert_ne!(
        other.tenant_strategies[0].seed,
        sc.tenant_strategies[0].seed
    );
    assert_eq!(
        other.with_seed(sc.seed).tenant_strategies[0].seed,
        sc.tenant_strategies[0].seed
    );
}
