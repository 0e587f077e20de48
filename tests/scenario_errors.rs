//! Every validation error of the scenario loader: each test breaks one thing
//! in a valid scenario and checks the file, line, column, message and hint.

use std::path::{Path, PathBuf};

use stormglass::scenario::{load, load_str, ScenarioError};

/// A valid scenario. Line numbers the tests rely on:
///
/// | line | what                                     |
/// |------|------------------------------------------|
/// | 1-3  | `[run]`, duration, warmup                |
/// | 5    | first `[[provider]]` (openai)            |
/// | 8    | `[[provider.pool]]` project              |
/// | 12   | `[[provider.key]]` svc-a, pool at 14     |
/// | 16   | `[[provider.model]]` gpt-4o-mini         |
/// | 20   | ttft, 21 tokens_per_s, 22 faults         |
/// | 24   | second `[[provider]]` (anthropic)        |
/// | 28   | `[[provider.model]]` claude-sonnet-4     |
/// | 33   | `[[incident]]` (latency)                 |
/// | 40   | `[traffic]`, rate at 41                  |
/// | 43   | `[[traffic.task]]` summarization         |
/// | 48   | `[[strategy]]`; routing 50, retry 51, fallback 52 |
fn base() -> String {
    r#"[run]
duration = "10m"
warmup = "30s"

[[provider]]
name = "openai"

[[provider.pool]]
name = "project"
rpm = 3000

[[provider.key]]
name = "svc-a"
pool = "project"

[[provider.model]]
name = "gpt-4o-mini"
input_per_mtok = 0.15
output_per_mtok = 0.60
ttft = { median = "350ms", p99 = "1.5s" }
tokens_per_s = { median = 90, p1 = 30 }
faults = { error_500 = 0.01, reset = 0.01 }

[[provider]]
name = "anthropic"
style = "anthropic"

[[provider.model]]
name = "claude-sonnet-4"
input_per_mtok = 3.0
output_per_mtok = 15.0

[[incident]]
kind = "latency"
model = "gpt-4o-mini"
start = "2m"
duration = "1m"
factor = 3

[traffic]
rate = 10

[[traffic.task]]
name = "summarization"
input_tokens = { median = 2000, p99 = 8000 }
output_tokens = { median = 200, p99 = 600 }

[[strategy]]
name = "fallback"
routing = { default = "gpt-4o-mini", by_task = { summarization = "gpt-4o-mini" } }
retry = { max_retries = 2, base = "500ms", cap = "8s" }
fallback = { chain = ["claude-sonnet-4"] }
"#
    .to_owned()
}

/// The base scenario with `from` (which must occur exactly once) replaced.
fn edit(from: &str, to: &str) -> String {
    let b = base();
    assert_eq!(
        b.matches(from).count(),
        1,
        "`{from}` must occur once in the base scenario"
    );
    b.replacen(from, to, 1)
}

/// The base scenario without the lines from `from` (inclusive) to `to` (exclusive).
fn cut(from: &str, to: Option<&str>) -> String {
    let b = base();
    let i = b.find(from).expect("start of the cut");
    let j = to.map_or(b.len(), |t| b.find(t).expect("end of the cut"));
    format!("{}{}", &b[..i], &b[j..])
}

fn err(text: &str) -> ScenarioError {
    load_str(Path::new("t.toml"), text).expect_err("the scenario should be rejected")
}

#[track_caller]
fn check(e: &ScenarioError, line: usize, column: usize, message: &str) {
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "wrong location for: {e}"
    );
    assert!(
        e.message.contains(message),
        "message {:?} lacks {message:?}",
        e.message
    );
}

#[track_caller]
fn check_hint(e: &ScenarioError, hint: &str) {
    let h = e
        .hint
        .as_deref()
        .unwrap_or_else(|| panic!("no hint for: {e}"));
    assert!(h.contains(hint), "hint {h:?} lacks {hint:?}");
}

/// A fresh directory under the system temp dir for one test.
fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "stormglass-scenario-errors-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

// ---------------------------------------------------------------- valid files

#[test]
fn base_scenario_is_valid() {
    let s = load_str(Path::new("t.toml"), &base()).expect("base scenario loads");
    assert_eq!(s.name, "t");
    assert_eq!(s.strategies.len(), 1);
}

#[test]
fn bundled_scenarios_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for f in ["retry-storm.toml", "provider-outage.toml"] {
        if let Err(e) = load(&dir.join(f)) {
            panic!("{f} does not load:\n{e}");
        }
    }
}

// ---------------------------------------------------------------- unknown keys

#[test]
fn unknown_key_in_run() {
    let e = err(&edit("warmup =", "wramup ="));
    check(&e, 3, 1, "unknown field `wramup`");
    assert!(
        e.message.contains("`warmup`"),
        "the message lists the known keys"
    );
    check_hint(&e, "did you mean `warmup`?");
    assert_eq!(e.source_line.as_deref(), Some("wramup = \"30s\""));
}

#[test]
fn unknown_key_in_provider_model() {
    let e = err(&edit("output_per_mtok = 0.60", "output_per_mtk = 0.60"));
    check(&e, 19, 1, "unknown field `output_per_mtk`");
    check_hint(&e, "did you mean `output_per_mtok`?");
}

#[test]
fn unknown_key_in_strategy() {
    let e = err(&edit("fallback = {", "falback = {"));
    check(&e, 52, 1, "unknown field `falback`");
    check_hint(&e, "did you mean `fallback`?");
}

#[test]
fn unknown_top_level_section() {
    let e = err(&edit("[traffic]", "[trafic]"));
    check(&e, 40, 2, "unknown field `trafic`");
    check_hint(&e, "did you mean `traffic`?");
}

#[test]
fn unknown_preset_or_version() {
    // Presets are pinned to the versions read: a version that is not one is
    // refused, and the hint names the nearest.
    let e = err(&edit(
        "name = \"fallback\"\n",
        "name = \"fallback\"\npreset = \"openai-python@2.5\"\n",
    ));
    check(&e, 50, 10, "unknown preset `openai-python@2.5`");
    check_hint(&e, "did you mean `openai-python@2.51`?");
    check_hint(
        &e,
        "presets: openai-python@1.95, openai-python@2.51, openai-python@2.52, openai-python@3.54",
    );
}

#[test]
fn unknown_backoff_kind() {
    let e = err(&edit(
        "cap = \"8s\"",
        "cap = \"8s\", backoff = \"full-jitter\"",
    ));
    check(&e, 51, 66, "unknown variant `full-jitter`");
    check_hint(&e, "did you mean `full_jitter`?");
}

#[test]
fn missing_required_key() {
    let e = err(&edit("output_tokens = { median = 200, p99 = 600 }\n", ""));
    check(&e, 43, 1, "missing field `output_tokens`");
    check_hint(&e, "no default");
}

// ---------------------------------------------------------------- value types

#[test]
fn duration_string_without_unit() {
    let e = err(&edit("duration = \"10m\"", "duration = \"5\""));
    check(&e, 2, 12, "duration \"5\" has no unit");
    assert!(e.message.contains("\"5s\""), "{}", e.message);
}

#[test]
fn duration_as_integer() {
    let e = err(&edit("duration = \"10m\"", "duration = 5"));
    check(&e, 2, 12, "durations are strings with a unit");
    assert!(e.message.contains("\"5s\""), "{}", e.message);
}

#[test]
fn negative_duration() {
    let e = err(&edit("warmup = \"30s\"", "warmup = \"-5s\""));
    check(&e, 3, 10, "duration \"-5s\" is negative");
}

#[test]
fn zero_run_duration() {
    let e = err(&edit("duration = \"10m\"", "duration = \"0s\""));
    check(&e, 2, 12, "must be greater than zero");
}

#[test]
fn probability_above_one() {
    let e = err(&edit("error_500 = 0.01", "error_500 = 1.5"));
    check(&e, 22, 24, "probability 1.5 is outside 0..1");
}

#[test]
fn negative_probability() {
    let e = err(&edit("error_500 = 0.01", "error_500 = -0.1"));
    check(&e, 22, 24, "probability -0.1 is outside 0..1");
}

#[test]
fn latency_p99_below_median() {
    let e = err(&edit("p99 = \"1.5s\"", "p99 = \"100ms\""));
    check(&e, 20, 8, "p99 (100ms) is below the median (350ms)");
}

#[test]
fn token_count_p99_below_median() {
    let e = err(&edit("p99 = 600", "p99 = 100"));
    check(&e, 46, 17, "p99 (100) is below the median (200)");
}

#[test]
fn tokens_per_s_p1_above_median() {
    let e = err(&edit("p1 = 30", "p1 = 120"));
    check(&e, 21, 16, "p1 (120) is above the median (90)");
}

// ---------------------------------------------------------------- references

#[test]
fn fallback_chain_unknown_model() {
    let e = err(&edit(
        "chain = [\"claude-sonnet-4\"]",
        "chain = [\"gpt-4o-mni\"]",
    ));
    check(&e, 52, 23, "unknown model `gpt-4o-mni`");
    check_hint(&e, "did you mean `gpt-4o-mini`?");
}

#[test]
fn routing_by_task_unknown_task() {
    let e = err(&edit(
        "by_task = { summarization",
        "by_task = { sumarization",
    ));
    check(
        &e,
        50,
        50,
        "routing names task `sumarization`, which the traffic does not have",
    );
    check_hint(&e, "did you mean `summarization`?");
}

#[test]
fn key_points_at_missing_pool() {
    let e = err(&edit("pool = \"project\"", "pool = \"projekt\""));
    check(
        &e,
        14,
        8,
        "key `svc-a` points at pool `projekt`, which provider `openai` does not have",
    );
    check_hint(&e, "did you mean `project`?");
}

#[test]
fn unknown_failure_kind_in_on() {
    let e = err(&edit(
        "fallback = {",
        "on = { rate_limitd = \"retry\" }\nfallback = {",
    ));
    check(&e, 52, 8, "unknown failure kind `rate_limitd`");
    check_hint(&e, "did you mean `rate_limited`?");
}

// ---------------------------------------------------------------- providers and models

#[test]
fn model_without_price() {
    let e = err(&edit("input_per_mtok = 3.0\n", ""));
    check(&e, 28, 1, "model `claude-sonnet-4` has no price");
    check_hint(&e, "[prices]");
}

#[test]
fn fault_rates_above_one() {
    let e = err(&edit(
        "error_500 = 0.01, reset = 0.01",
        "error_500 = 0.6, reset = 0.5",
    ));
    check(
        &e,
        16,
        1,
        "the fault rates of model `gpt-4o-mini` add up to 1.1, more than 1",
    );
    check_hint(&e, "together at most 1");
}

#[test]
fn duplicate_model() {
    let e = err(&edit(
        "name = \"claude-sonnet-4\"",
        "name = \"gpt-4o-mini\"",
    ));
    check(&e, 28, 1, "model `gpt-4o-mini` is defined twice");
    check_hint(&e, "unique across providers");
}

#[test]
fn duplicate_provider() {
    let e = err(&edit("name = \"anthropic\"", "name = \"openai\""));
    check(&e, 24, 1, "provider `openai` is defined twice");
    check_hint(&e, "unique");
}

// ---------------------------------------------------------------- incidents

#[test]
fn incident_with_two_targets() {
    let e = err(&edit(
        "model = \"gpt-4o-mini\"\n",
        "model = \"gpt-4o-mini\"\nprovider = \"openai\"\n",
    ));
    check(&e, 33, 1, "an incident needs exactly one target");
    check_hint(&e, "one of `model`, `provider` or `pool`");
}

#[test]
fn incident_without_target() {
    let e = err(&edit("model = \"gpt-4o-mini\"\n", ""));
    check(&e, 33, 1, "an incident needs exactly one target");
    check_hint(&e, "one of `model`, `provider` or `pool`");
}

#[test]
fn error_spike_without_rate() {
    let e = err(&edit("kind = \"latency\"", "kind = \"error_spike\"").replace("factor = 3\n", ""));
    check(&e, 33, 1, "`error_spike` incident needs `rate`");
}

#[test]
fn outage_with_factor() {
    let e = err(&edit("kind = \"latency\"", "kind = \"outage\""));
    check(&e, 33, 1, "`factor` does not apply to a `outage` incident");
    check_hint(&e, "incident table");
}

#[test]
fn latency_incident_with_rate() {
    let e = err(&edit("factor = 3", "factor = 3\nrate = 0.5"));
    check(&e, 33, 1, "`rate` does not apply to a `latency` incident");
}

#[test]
fn latency_incident_with_mode() {
    let e = err(&edit("factor = 3", "factor = 3\nmode = \"fast\""));
    check(&e, 33, 1, "`mode` does not apply to a `latency` incident");
}

#[test]
fn quota_cut_on_a_model() {
    let e =
        err(&edit("kind = \"latency\"", "kind = \"quota_cut\"")
            .replace("factor = 3", "factor = 0.5"));
    check(
        &e,
        33,
        1,
        "a quota cut hits a `pool` or a `provider`, not a model",
    );
}

#[test]
fn outage_on_a_pool() {
    let e = err(&edit(
        "kind = \"latency\"\nmodel = \"gpt-4o-mini\"",
        "kind = \"outage\"\npool = \"openai/project\"",
    )
    .replace("factor = 3\n", ""));
    check(
        &e,
        33,
        1,
        "a `outage` incident hits a `model` or a `provider`, not a pool",
    );
    check_hint(&e, "quota_cut");
}

#[test]
fn quota_cut_on_a_pool_is_valid() {
    let text = edit(
        "kind = \"latency\"\nmodel = \"gpt-4o-mini\"",
        "kind = \"quota_cut\"\npool = \"project\"",
    )
    .replace("factor = 3", "factor = 0.5");
    load_str(Path::new("t.toml"), &text)
        .expect("a quota cut on a pool, named without its provider");
}

#[test]
fn latency_factor_below_one() {
    let e = err(&edit("factor = 3", "factor = 0.5"));
    check(
        &e,
        33,
        1,
        "a latency factor of 0.5 would speed the provider up",
    );
    check_hint(&e, "at least 1");
}

// ---------------------------------------------------------------- run, traffic, strategies

#[test]
fn missing_run() {
    let e = err(&cut("[run]", Some("[[provider]]")));
    check(&e, 0, 0, "missing [run] section");
    check_hint(&e, "duration");
}

#[test]
fn missing_traffic() {
    let e = err(&cut("[traffic]", Some("[[strategy]]")));
    check(&e, 0, 0, "missing [traffic] section");
    check_hint(&e, "[[traffic.task]]");
}

#[test]
fn no_strategies() {
    let e = err(&cut("[[strategy]]", None));
    check(&e, 0, 0, "no strategies to compare");
    check_hint(&e, "[[strategy]]");
}

#[test]
fn duplicate_strategy() {
    let text = format!(
        "{}\n[[strategy]]\nname = \"fallback\"\nrouting = {{ default = \"gpt-4o-mini\" }}\n",
        base()
    );
    let e = err(&text);
    check(&e, 54, 1, "strategy `fallback` is defined twice");
}

#[test]
fn warmup_not_shorter_than_duration() {
    let e = err(&edit("warmup = \"30s\"", "warmup = \"10m\""));
    check(&e, 3, 1, "warmup is not shorter than duration");
    check_hint(&e, "left out of the figures");
}

#[test]
fn warmup_error_ignores_comments() {
    let text = format!(
        "# a long warmup\n{}",
        edit("warmup = \"30s\"", "warmup = \"10m\"")
    );
    let e = err(&text);
    check(&e, 4, 1, "warmup is not shorter than duration");
}

#[test]
fn traffic_with_rate_and_profile() {
    let e = err(&edit(
        "rate = 10",
        "rate = 10\nprofile = [{ at = \"0s\", rate = 5 }]",
    ));
    check(&e, 40, 1, "[traffic] gives both `rate` and `profile`");
    check_hint(&e, "not both");
}

#[test]
fn traffic_error_ignores_comments() {
    let text = format!(
        "# see [traffic]\n{}",
        edit(
            "rate = 10",
            "rate = 10\nprofile = [{ at = \"0s\", rate = 5 }]"
        )
    );
    let e = err(&text);
    check(&e, 41, 1, "[traffic] gives both `rate` and `profile`");
}

#[test]
fn profile_points_not_increasing() {
    let e = err(&edit(
        "rate = 10",
        "profile = [{ at = \"1m\", rate = 5 }, { at = \"30s\", rate = 8 }]",
    ));
    check(
        &e,
        41,
        37,
        "profile points must be in increasing time order",
    );
}

#[test]
fn retry_cap_below_base() {
    let e = err(&edit("cap = \"8s\"", "cap = \"100ms\""));
    check(
        &e,
        48,
        1,
        "strategy `fallback`: retry.cap (100ms) is below retry.base (500ms)",
    );
    check_hint(&e, "at least the base");
}

#[test]
fn retry_after_keeps_step_where_it_would_change_nothing() {
    let e = err(&edit(
        "cap = \"8s\" }",
        "cap = \"8s\", honor_retry_after = false, retry_after_keeps_step = true }",
    ));
    check(
        &e,
        48,
        1,
        "strategy `fallback` sets retry.retry_after_keeps_step = true, but retry-after is not honoured",
    );
    check_hint(&e, "honor_retry_after = true");
    let e = err(&edit(
        "cap = \"8s\" }",
        "cap = \"8s\", backoff = \"constant\", retry_after_keeps_step = true }",
    ));
    check(&e, 48, 1, "its backoff has no step that grows");
    check_hint(&e, "exponential");
    // Where it does something, it is taken.
    let ok = edit(
        "cap = \"8s\" }",
        "cap = \"8s\", backoff = \"exponential\", retry_after_keeps_step = true }",
    );
    let sc = load_str(Path::new("t.toml"), &ok).expect("a valid scenario");
    assert!(sc.strategies[0].retry.retry_after_keeps_step);
}

// ---------------------------------------------------------------- includes

#[test]
fn include_that_does_not_exist() {
    let d = temp_dir("include-missing");
    let main = d.join("main.toml");
    std::fs::write(
        &main,
        format!("include = [\"catalog/nope.toml\"]\n{}", base()),
    )
    .unwrap();
    let e = load(&main).expect_err("missing include");
    assert_eq!(e.file, main);
    check(&e, 1, 12, "included file");
    assert!(
        e.message.contains("nope.toml` does not exist"),
        "{}",
        e.message
    );
    check_hint(&e, "relative to the file that includes them");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn include_cycle() {
    let d = temp_dir("include-cycle");
    let a = d.join("a.toml");
    let b = d.join("b.toml");
    std::fs::write(&a, format!("include = [\"b.toml\"]\n{}", base())).unwrap();
    std::fs::write(&b, "# prices\ninclude = [\"a.toml\"]\n").unwrap();
    let e = load(&a).expect_err("include cycle");
    assert_eq!(e.file, b);
    check(&e, 2, 12, "include cycle: `a.toml`");
    check_hint(&e, "must not include");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn included_prices_give_a_model_its_price() {
    let d = temp_dir("include-prices");
    let main = d.join("main.toml");
    std::fs::write(
        d.join("prices.toml"),
        "[prices.claude-sonnet-4]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n",
    )
    .unwrap();
    let text = edit("input_per_mtok = 3.0\noutput_per_mtok = 15.0\n", "");
    std::fs::write(&main, format!("include = [\"prices.toml\"]\n{text}")).unwrap();
    load(&main).expect("the included price table prices the model");
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------- display

#[test]
fn display_shows_location_source_line_and_hint() {
    let e = err(&edit(
        "chain = [\"claude-sonnet-4\"]",
        "chain = [\"gpt-4o-mni\"]",
    ));
    let shown = e.to_string();
    assert!(
        shown.starts_with("t.toml:52:23: unknown model `gpt-4o-mni`"),
        "{shown}"
    );
    assert!(
        shown.contains("\n 52 | fallback = { chain = [\"gpt-4o-mni\"] }\n"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("\n    | {}^", " ".repeat(22))),
        "caret under column 23:\n{shown}"
    );
    assert!(
        shown.contains("hint: did you mean `gpt-4o-mini`?"),
        "{shown}"
    );
}

// Limits that keep a scenario from breaking the simulator (found in review).

#[test]
fn a_pool_that_holds_less_than_one_request() {
    let e = err(&edit("rpm = 3000", "rpm = 30\nburst = \"1s\""));
    check(&e, 8, 1, "pool `project` holds less than one request");
    check_hint(&e, "rpm x burst / 60s");
}

#[test]
fn a_token_bucket_smaller_than_any_request() {
    let e = err(&edit(
        "rpm = 3000",
        "rpm = 3000\ntpm = 60000\nburst = \"1s\"",
    ));
    check(
        &e,
        8,
        1,
        "pool `openai/project` can never admit a `summarization` request",
    );
    check_hint(&e, "max_tokens");
}

#[test]
fn a_latency_factor_beyond_a_thousand() {
    let e = err(&edit("factor = 3", "factor = 1e6"));
    check(&e, 33, 1, "beyond 1000");
    check_hint(&e, "blackhole");
}

#[test]
fn a_fallback_chain_longer_than_seven() {
    let long = (0..8)
        .map(|_| "\"claude-sonnet-4\"")
        .collect::<Vec<_>>()
        .join(", ");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        &format!("fallback = {{ chain = [{long}] }}"),
    ));
    assert_eq!(e.line, 52);
    assert!(e.message.contains("at most 7 models"), "{e}");
}

#[test]
fn too_many_clients_or_retries() {
    let e = err(&edit(
        "name = \"fallback\"",
        "name = \"fallback\"\nclients = 5000",
    ));
    check(&e, 48, 1, "clients = 5000");
    let e = err(&edit("max_retries = 2", "max_retries = 1000"));
    check(&e, 48, 1, "max_retries = 1000");
}

#[test]
fn a_zero_error_latency_or_an_endless_duration() {
    let e = err(&edit(
        "name = \"openai\"",
        "name = \"openai\"\nerror_latency = \"0s\"",
    ));
    check(&e, 7, 17, "greater than zero");
    let e = err(&edit("duration = \"10m\"", "duration = \"400d\""));
    check(&e, 2, 12, "too large");
}

#[test]
fn a_budget_field_that_does_not_apply() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbudget = { kind = \"token_bucket\", percent = 0.1 }",
    ));
    check(
        &e,
        53,
        10,
        "`percent` does not apply to a `token_bucket` budget",
    );
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbudget = { kind = \"leaky\" }",
    ));
    assert!(e.message.contains("unknown variant `leaky`"), "{e}");
}

#[test]
fn a_breaker_field_that_does_not_apply() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"cooldown\", probes = 2 }",
    ));
    check(
        &e,
        53,
        11,
        "`probes` does not apply to a `cooldown` breaker",
    );
}

#[test]
fn failure_rate_breaker_fields() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"failure_rate\", allowed_fails = 3 }",
    ));
    check(
        &e,
        53,
        11,
        "`allowed_fails` does not apply to a `failure_rate` breaker",
    );
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"cooldown\", single_deployment = true }",
    ));
    check(
        &e,
        53,
        11,
        "`single_deployment` does not apply to a `cooldown` breaker",
    );
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"failure_rate\", all_failed_min = 0 }",
    ));
    check(&e, 53, 11, "all_failed_min must be at least 1");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"failure_rate\", failure_threshold = 1.5 }",
    ));
    check(&e, 53, 56, "probability 1.5 is outside 0..1");
}

#[test]
fn breaker_and_window_limits() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"ratio\", min_throughput = 1 }",
    ));
    assert!(e.message.contains("min_throughput of at least 2"), "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"ratio\", window = \"365d\" }",
    ));
    assert!(e.message.contains("longer than 10m"), "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nthrottle = { window = \"1h\" }",
    ));
    assert!(e.message.contains("throttle window longer than 10m"), "{e}");
}

#[test]
fn hedge_delays_that_make_no_sense() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nhedge = { delay = \"p100\" }",
    ));
    check(
        &e,
        53,
        19,
        "hedge delay `p100` is neither a duration nor a percentile",
    );
    check_hint(&e, "p95");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nhedge = { delay = \"soon\" }",
    ));
    assert!(e.message.contains("neither a duration"), "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nhedge = { delay = \"0s\" }",
    ));
    assert!(e.message.contains("doubles every attempt"), "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nhedge = { to = \"elsewhere\" }",
    ));
    assert!(e.message.contains("unknown variant `elsewhere`"), "{e}");
}

#[test]
fn cost_guards_that_cannot_work() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\ncost_guard = { alerts_usd = [50, 10] }",
    ));
    check(
        &e,
        53,
        14,
        "cost guard alerts_usd must be in ascending order",
    );
    check_hint(&e, "[10, 50, 100, 500, 1000]");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\ncost_guard = { action = \"reject\" }",
    ));
    assert!(e.message.contains("no limit to act at"), "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\ncost_guard = { }",
    ));
    assert!(e.message.contains("no limit and no alert"), "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\ncost_guard = { daily_usd = -5 }",
    ));
    assert_eq!(e.line, 53, "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\ncost_guard = { daily_usd = 100, action = \"pray\" }",
    ));
    assert!(e.message.contains("unknown variant `pray`"), "{e}");
}

#[test]
fn rate_and_concurrency_limits_that_cannot_work() {
    let at = "fallback = { chain = [\"claude-sonnet-4\"] }";
    let with = |extra: &str| err(&edit(at, &format!("{at}\n{extra}")));
    let e = with("rate_limit = { burst = \"5s\" }");
    check(&e, 53, 14, "a rate limit with neither rpm nor tpm");
    check_hint(&e, "requests per minute");
    let e = with("rate_limit = { rpm = 0 }");
    assert!(e.message.contains("never send"), "{e}");
    let e = with("rate_limit = { rpm = 60, per = \"team\" }");
    assert!(e.message.contains("unknown variant `team`"), "{e}");
    let e = with("concurrency = { kind = \"fixed\", initial = 3 }");
    check(
        &e,
        53,
        15,
        "`initial` does not apply to a `fixed` concurrency limit",
    );
    let e = with("concurrency = { kind = \"aimd\", min = 50, initial = 10 }");
    assert!(e.message.contains("impossible bounds"), "{e}");
    check_hint(&e, "min <= initial <= max");
    let e = with("concurrency = { kind = \"fixed\", limit = 0 }");
    assert!(e.message.contains("impossible bounds"), "{e}");
    let e = with("concurrency = { kind = \"aimd\", backoff = 1.0 }");
    assert!(
        e.message.contains("backoff must be above 0 and below 1"),
        "{e}"
    );
}

#[test]
fn an_unknown_key_selection() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nkey_pool = { select = \"random\" }",
    ));
    assert_eq!(e.line, 53, "{e}");
    assert!(e.message.contains("unknown variant `random`"), "{e}");
}

#[test]
fn a_breaker_per_something_unknown() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nbreaker = { kind = \"ratio\", per = \"region\" }",
    ));
    assert_eq!(e.line, 53, "{e}");
    assert!(e.message.contains("unknown variant `region`"), "{e}");
}

#[test]
fn a_spend_budget_needs_its_unit() {
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nspend_budget = { percent = 0.1 }",
    ));
    assert_eq!(e.line, 53, "{e}");
    assert!(e.message.contains("missing field `unit`"), "{e}");
    let e = err(&edit(
        "fallback = { chain = [\"claude-sonnet-4\"] }",
        "fallback = { chain = [\"claude-sonnet-4\"] }\nspend_budget = { unit = \"usd\", window = \"2h\" }",
    ));
    assert!(
        e.message.contains("spend budget window longer than 10m"),
        "{e}"
    );
}

#[test]
fn max_completion_tokens_is_for_openai_models_only() {
    // On an OpenAI provider, or one of its models, it loads.
    let sc = load_str(
        Path::new("t.toml"),
        &edit(
            "name = \"gpt-4o-mini\"\n",
            "name = \"gpt-4o-mini\"\nmax_tokens_field = \"max_completion_tokens\"\n",
        ),
    )
    .expect("a reasoning model's field loads");
    assert_eq!(
        sc.world.models[0].max_tokens_field,
        stormglass::wire::MaxTokensField::MaxCompletionTokens
    );
    assert_eq!(
        sc.world.models[1].max_tokens_field,
        stormglass::wire::MaxTokensField::MaxTokens
    );
    // The provider's field is its models' default.
    let sc = load_str(
        Path::new("t.toml"),
        &edit(
            "name = \"openai\"\n",
            "name = \"openai\"\nmax_tokens_field = \"max_completion_tokens\"\n",
        ),
    )
    .expect("a provider-wide field loads");
    assert_eq!(
        sc.world.models[0].max_tokens_field,
        stormglass::wire::MaxTokensField::MaxCompletionTokens
    );
    // Anthropic's API has no such field.
    let e = err(&edit(
        "name = \"claude-sonnet-4\"\n",
        "name = \"claude-sonnet-4\"\nmax_tokens_field = \"max_completion_tokens\"\n",
    ));
    check(&e, 28, 1, "max_completion_tokens");
    check_hint(&e, "Anthropic");
    // Unknown values are refused with the known ones.
    let e = err(&edit(
        "name = \"gpt-4o-mini\"\n",
        "name = \"gpt-4o-mini\"\nmax_tokens_field = \"max_output_tokens\"\n",
    ));
    assert!(e.message.contains("max_output_tokens"), "{e}");
}
