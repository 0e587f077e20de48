//! `schema/report.v1.json` against real reports: every bundled scenario's
//! report, and an edge-case report (nothing succeeds, another tenant), must
//! validate; reports with a field removed, a wrong type or a stray field must
//! not; and the schema itself must be strict (closed objects, every property
//! required) so that it cannot quietly accept anything.

use std::path::{Path, PathBuf};

use boon::{Compiler, Draft, SchemaIndex, Schemas};
use serde_json::{json, Value};
use stormglass::policy::contract::FailReason;
use stormglass::report::to_json;
use stormglass::scenario::Scenario;
use stormglass::units::SECS;

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.v1.json");
const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");

fn schema_json() -> Value {
    let text = std::fs::read_to_string(SCHEMA).expect("read the schema");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// The compiled schema (checked against the 2020-12 metaschema by boon).
fn compile() -> (Schemas, SchemaIndex) {
    let mut schemas = Schemas::new();
    let mut compiler = Compiler::new();
    compiler.set_default_draft(Draft::V2020_12);
    compiler
        .add_resource(SCHEMA, schema_json())
        .expect("add the schema");
    let index = compiler
        .compile(SCHEMA, &mut schemas)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e:#}"));
    (schemas, index)
}

/// Runs `sc` and returns its report as written to `report.json`.
fn report(sc: &Scenario) -> Value {
    let (report, _) = stormglass::sim::run(sc, 2).expect("the run succeeds");
    serde_json::from_str(&to_json(&report)).expect("the report is JSON")
}

/// Keeps the run short in a debug build: up to 30 s past the last
/// incident's end, so the incidents' failures still show in the report.
fn shorten(sc: &mut Scenario) {
    let last_incident = sc.world.incidents.iter().map(|i| i.end).max().unwrap_or(0);
    let cut = (last_incident + 30 * SECS).max(sc.warmup + 60 * SECS);
    sc.duration = sc.duration.min(cut);
}

fn bundled() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(SCENARIOS)
        .expect("read scenarios/")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[track_caller]
fn assert_valid(schemas: &Schemas, index: SchemaIndex, v: &Value, what: &str) {
    if let Err(e) = schemas.validate(v, index) {
        panic!("{what}: the report does not match the schema:\n{e}");
    }
}

#[test]
fn bundled_scenario_reports_match_the_schema() {
    let (schemas, index) = compile();
    let files = bundled();
    assert!(files.len() >= 2, "bundled scenarios: {files:?}");
    for path in files {
        let mut sc =
            stormglass::scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        shorten(&mut sc);
        let v = report(&sc);
        assert_valid(&schemas, index, &v, &path.display().to_string());
        // The runs did see their incidents (a scenario without any, such
        // as the runaway loop, may well have no failure in its first minutes).
        if sc.world.incidents.is_empty() {
            continue;
        }
        let failed = v["strategies"].as_array().into_iter().flatten().any(|s| {
            s["series"]["failures"].as_object().is_some_and(|f| {
                f.values()
                    .filter_map(Value::as_array)
                    .flatten()
                    .any(|n| n.as_u64() > Some(0))
            })
        });
        assert!(failed, "{}: no failure in the report", path.display());
    }
}

/// Nothing succeeds (so `cost_per_1k_successes` is null and the success
/// latencies are all zero), and another tenant shares the pool.
const EDGE: &str = r#"
[run]
duration = "2m"
warmup = "10s"

[[provider]]
name = "openai"

  [[provider.pool]]
  name = "project"
  rpm = 3000

  [[provider.key]]
  name = "svc-a"
  pool = "project"

  [[provider.key]]
  name = "other-team"
  pool = "project"

  [[provider.model]]
  name = "gpt-4o-mini"
  input_per_mtok = 0.15
  output_per_mtok = 0.60

[[incident]]
name = "down all along"
kind = "outage"
model = "gpt-4o-mini"
mode = "fast"
start = "0s"
duration = "10m"

[traffic]
rate = 5

  [[traffic.task]]
  name = "summarization"
  input_tokens = { median = 2000, p99 = 8000 }
  output_tokens = { median = 200, p99 = 600 }

  [[traffic.tenant]]
  name = "other-team"
  rate = 2
  model = "gpt-4o-mini"
  key = "other-team"

[[strategy]]
name = "no-retries"
routing = { default = "gpt-4o-mini" }
retry = { max_retries = 0 }
"#;

fn edge_report() -> Value {
    let sc = stormglass::scenario::load_str(Path::new("edge.toml"), EDGE).expect("edge scenario");
    report(&sc)
}

#[test]
fn edge_case_report_matches_the_schema() {
    let (schemas, index) = compile();
    let v = edge_report();
    let s = &v["strategies"][0];
    assert_eq!(s["successes"], 0, "{s}");
    assert!(s["cost_per_1k_successes"].is_null(), "{s}");
    assert_eq!(s["latency"]["success"]["count"], 0, "{s}");
    assert_eq!(s["tenants"][0]["name"], "other-team", "{s}");
    assert_valid(&schemas, index, &v, "edge case");
}

/// Sets (or adds) the value at a JSON pointer; the parent must exist.
fn set(v: &mut Value, pointer: &str, to: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    match v.pointer_mut(parent) {
        Some(Value::Object(o)) => {
            o.insert(key.to_owned(), to);
        }
        Some(Value::Array(a)) => {
            let i: usize = key.parse().expect("an array index");
            *a.get_mut(i).unwrap_or_else(|| panic!("no {pointer}")) = to;
        }
        _ => panic!("no object or array at {parent:?}"),
    }
}

/// Removes the field at a JSON pointer.
fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let removed = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(key));
    assert!(removed.is_some(), "no {pointer}");
}

#[test]
fn schema_rejects_broken_reports() {
    let (schemas, index) = compile();
    let mut sc = stormglass::scenario::load(&Path::new(SCENARIOS).join("provider-outage.toml"))
        .expect("provider-outage loads");
    sc.duration = 120 * SECS;
    let good = report(&sc);
    assert_valid(&schemas, index, &good, "provider-outage, 2 minutes");

    // `resolved` is free-form, and `cost_per_1k_successes` may be null.
    let mut ok = good.clone();
    set(
        &mut ok,
        "/scenario/resolved/anything",
        json!({ "at": [1, "all"] }),
    );
    set(&mut ok, "/strategies/0/cost_per_1k_successes", Value::Null);
    assert_valid(&schemas, index, &ok, "free-form resolved, null cost per 1k");

    type Edit = Box<dyn Fn(&mut Value)>;
    let broken: Vec<(&str, Edit)> = vec![
        (
            "no schema_version",
            Box::new(|v| remove(v, "/schema_version")),
        ),
        (
            "schema_version 2",
            Box::new(|v| set(v, "/schema_version", json!(2))),
        ),
        (
            "unknown mode",
            Box::new(|v| set(v, "/mode", json!("replay"))),
        ),
        (
            "no strategies",
            Box::new(|v| set(v, "/strategies", json!([]))),
        ),
        (
            "resolved not an object",
            Box::new(|v| set(v, "/scenario/resolved", json!("x"))),
        ),
        ("no seed", Box::new(|v| remove(v, "/scenario/seed"))),
        (
            "negative seed",
            Box::new(|v| set(v, "/scenario/seed", json!(-1))),
        ),
        (
            "stray top-level field",
            Box::new(|v| set(v, "/extra", json!(1))),
        ),
        (
            "stray scenario field",
            Box::new(|v| set(v, "/scenario/extra", json!(1))),
        ),
        (
            "incident without end",
            Box::new(|v| remove(v, "/scenario/incidents/0/end_ns")),
        ),
        (
            "requests as a string",
            Box::new(|v| set(v, "/strategies/0/requests", json!("35037"))),
        ),
        (
            "fractional attempts",
            Box::new(|v| set(v, "/strategies/0/attempts", json!(1.5))),
        ),
        (
            "success rate above 1",
            Box::new(|v| set(v, "/strategies/0/success_rate", json!(1.5))),
        ),
        (
            "no cost per 1k",
            Box::new(|v| remove(v, "/strategies/0/cost_per_1k_successes")),
        ),
        (
            "usd as a number",
            Box::new(|v| set(v, "/strategies/0/cost/usd", json!(1.5))),
        ),
        (
            "usd with 2 decimals",
            Box::new(|v| set(v, "/strategies/0/cost/usd", json!("1.50"))),
        ),
        (
            "negative nano_usd",
            Box::new(|v| set(v, "/strategies/0/cost/nano_usd", json!(-5))),
        ),
        (
            "stray money field",
            Box::new(|v| set(v, "/strategies/0/cost/eur", json!("1.000000"))),
        ),
        (
            "unknown failure reason",
            Box::new(|v| set(v, "/strategies/0/failures/gremlins", json!(0))),
        ),
        (
            "missing failure reason",
            Box::new(|v| remove(v, "/strategies/0/failures/deadline")),
        ),
        (
            "no p99",
            Box::new(|v| remove(v, "/strategies/0/latency/all/p99_us")),
        ),
        (
            "p50 as a float",
            Box::new(|v| set(v, "/strategies/0/latency/ttft/p50_us", json!(0.5))),
        ),
        (
            "stray latency",
            Box::new(|v| set(v, "/strategies/0/latency/p42", json!({}))),
        ),
        (
            "model without cost",
            Box::new(|v| remove(v, "/strategies/0/models/0/cost")),
        ),
        (
            "negative tokens",
            Box::new(|v| set(v, "/strategies/0/models/0/tokens/input", json!(-1))),
        ),
        ("no series", Box::new(|v| remove(v, "/strategies/0/series"))),
        (
            "series of strings",
            Box::new(|v| set(v, "/strategies/0/series/successes/0", json!("1"))),
        ),
        (
            "series value past u32",
            Box::new(|v| {
                set(
                    v,
                    "/strategies/0/series/offered_attempts/0",
                    json!(1u64 << 32),
                )
            }),
        ),
        (
            "failure series not arrays",
            Box::new(|v| set(v, "/strategies/0/series/failures/deadline", json!(3))),
        ),
        (
            "failure series of floats",
            Box::new(|v| set(v, "/strategies/0/series/failures/deadline", json!([0.5]))),
        ),
        (
            "unknown failure series",
            Box::new(|v| set(v, "/strategies/0/series/failures/gremlins", json!([0]))),
        ),
        (
            "tenant without name",
            Box::new(|v| {
                set(
                    v,
                    "/strategies/0/tenants",
                    json!([{ "requests": 1, "successes": 1, "attempts": 1 }]),
                )
            }),
        ),
        (
            "zero clients",
            Box::new(|v| set(v, "/strategies/0/clients", json!(0))),
        ),
    ];
    for (what, edit) in &broken {
        let mut v = good.clone();
        edit(&mut v);
        assert!(
            schemas.validate(&v, index).is_err(),
            "the schema accepts a report with {what}"
        );
    }
}

/// Every object schema with `properties` must list them all as required and
/// forbid others, so that a misspelt keyword or a forgotten field shows up.
fn check_closed(s: &Value, at: &str, closed: &mut usize) {
    match s {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get("properties") {
                let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
                let mut required: Vec<&str> = o
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                names.sort_unstable();
                required.sort_unstable();
                assert_eq!(
                    names, required,
                    "{at}: required does not list every property"
                );
                assert_eq!(
                    o.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{at}: not closed"
                );
                *closed += 1;
            }
            for (k, v) in o {
                check_closed(v, &format!("{at}/{k}"), closed);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_closed(v, &format!("{at}/{i}"), closed);
            }
        }
        _ => {}
    }
}

#[test]
fn schema_is_strict_and_knows_every_failure_reason() {
    let schema = schema_json();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let mut closed = 0;
    check_closed(&schema, "#", &mut closed);
    assert!(closed >= 11, "only {closed} closed objects");

    let names: Vec<&str> = FailReason::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(
        schema["$defs"]["fail_reason"]["enum"],
        json!(names),
        "$defs/fail_reason"
    );
    assert_eq!(
        schema["$defs"]["strategy"]["properties"]["failures"]["required"],
        json!(names),
        "strategy failures"
    );
}
