//! The CI gate: a report against its scenario's `[[expect]]` thresholds and
//! against a committed baseline, printed as a k6-style pass/fail list; and
//! `diff`, two reports side by side.
//!
//! Everything here reads `report.json` as JSON, so `check` and `diff` work on
//! any report file, not only on one this process produced. A figure is named
//! once, in [`METRICS`], with where it lives in a strategy's section, its
//! unit and which way is better; thresholds, baselines and diffs all use that
//! one table.
//!
//! Runs are deterministic: an unchanged policy on an unchanged binary gives
//! identical figures, so a baseline comparison passes trivially. The
//! tolerance only matters for figures that changed, and then only in the
//! worse direction.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use crate::units::{format_latency, parse_duration, MICROS};

/// A figure's unit, for parsing thresholds and printing values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A share in 0..1, printed as a percentage.
    Fraction,
    /// A plain ratio (attempts per request).
    Ratio,
    /// Microseconds; thresholds are durations.
    Micros,
    /// US dollars.
    Usd,
    /// Per second.
    PerSec,
}

/// Which way a figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Lower is better (latency, cost, amplification).
    Lower,
    /// Higher is better (success, goodput).
    Higher,
}

/// A figure a threshold, a baseline or a diff can name.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Name in `[[expect]]` and in baselines.
    pub name: &'static str,
    /// JSON pointer inside a strategy's section.
    pub pointer: &'static str,
    /// Multiplier from the JSON value to the unit.
    pub scale: f64,
    /// Unit.
    pub unit: Unit,
    /// Better direction.
    pub better: Better,
    /// Changes smaller than this never fail a baseline comparison.
    pub slack: f64,
}

const fn m(
    name: &'static str,
    pointer: &'static str,
    scale: f64,
    unit: Unit,
    better: Better,
    slack: f64,
) -> Metric {
    Metric {
        name,
        pointer,
        scale,
        unit,
        better,
        slack,
    }
}

/// Every figure the gate knows, in the order reports show them.
pub const METRICS: &[Metric] = &[
    m(
        "success",
        "/success_rate",
        1.0,
        Unit::Fraction,
        Better::Higher,
        1e-4,
    ),
    m(
        "amplification",
        "/amplification",
        1.0,
        Unit::Ratio,
        Better::Lower,
        1e-3,
    ),
    m(
        "p50",
        "/latency/all/p50_us",
        1.0,
        Unit::Micros,
        Better::Lower,
        1e3,
    ),
    m(
        "p90",
        "/latency/all/p90_us",
        1.0,
        Unit::Micros,
        Better::Lower,
        1e3,
    ),
    m(
        "p95",
        "/latency/all/p95_us",
        1.0,
        Unit::Micros,
        Better::Lower,
        1e3,
    ),
    m(
        "p99",
        "/latency/all/p99_us",
        1.0,
        Unit::Micros,
        Better::Lower,
        1e3,
    ),
    m(
        "p999",
        "/latency/all/p999_us",
        1.0,
        Unit::Micros,
        Better::Lower,
        1e3,
    ),
    m(
        "ttft_p99",
        "/latency/ttft/p99_us",
        1.0,
        Unit::Micros,
        Better::Lower,
        1e3,
    ),
    m(
        "tpot_p50",
        "/latency/tpot/p50_us",
        1.0,
        Unit::Micros,
        Better::Lower,
        1e2,
    ),
    m(
        "recovery",
        "/incidents/0/recovery_ns",
        1e-3,
        Unit::Micros,
        Better::Lower,
        1e6,
    ),
    m(
        "cost",
        "/cost/nano_usd",
        1e-9,
        Unit::Usd,
        Better::Lower,
        1e-4,
    ),
    m(
        "cost_per_1k",
        "/cost_per_1k_successes/nano_usd",
        1e-9,
        Unit::Usd,
        Better::Lower,
        1e-4,
    ),
    m(
        "goodput",
        "/slo/goodput_rps",
        1.0,
        Unit::PerSec,
        Better::Higher,
        1e-3,
    ),
    m(
        "error_budget",
        "/slo/objectives/0/budget_consumed",
        1.0,
        Unit::Fraction,
        Better::Lower,
        1e-4,
    ),
];

/// The metric called `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

impl Metric {
    /// The figure in a strategy's section, in the metric's unit.
    pub fn value(&self, strategy: &Value) -> Option<f64> {
        strategy.pointer(self.pointer).and_then(|v| self.scaled(v))
    }

    /// A raw JSON figure (as in the report) in the metric's unit.
    fn scaled(&self, raw: &Value) -> Option<f64> {
        raw.as_f64().map(|v| v * self.scale)
    }

    /// A value in this unit, for people.
    pub fn show(&self, v: f64) -> String {
        match self.unit {
            Unit::Fraction => format!("{:.3}%", v * 100.0),
            Unit::Ratio => format!("{v:.3}"),
            Unit::Micros => format_latency((v.max(0.0) as u64) * MICROS),
            Unit::Usd => format!("${v:.4}"),
            Unit::PerSec => format!("{v:.3}/s"),
        }
    }

    /// Whether `new` is worse than `base` by more than the relative
    /// `tolerance` (and the metric's absolute slack). For success rates the
    /// tolerance applies to the failure share, so that 99.9% -> 99.0% (ten
    /// times the failures) is not within a few percent.
    pub fn worse(&self, base: f64, new: f64, tolerance: f64) -> bool {
        let (b, n) = match (self.better, self.unit) {
            (Better::Higher, Unit::Fraction) => (1.0 - base, 1.0 - new),
            (Better::Higher, _) => (-base, -new),
            (Better::Lower, _) => (base, new),
        };
        n - b > (b.abs() * tolerance).max(self.slack)
    }
}

/// A comparison operator of a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }

    fn parse(s: &str) -> Option<(Self, &str)> {
        for (t, op) in [
            ("<=", Self::Le),
            (">=", Self::Ge),
            ("<", Self::Lt),
            (">", Self::Gt),
        ] {
            if let Some(rest) = s.strip_prefix(t) {
                return Some((op, rest.trim()));
            }
        }
        None
    }
}

/// A threshold of `[[expect]]`, resolved; recorded in `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expectation {
    /// The strategy it applies to; `null` for every strategy.
    pub strategy: Option<String>,
    /// The metric's name (see the README's `[[expect]]` table).
    pub metric: String,
    /// As written, e.g. `< 2s`.
    pub condition: String,
    /// The operator.
    pub op: Op,
    /// The bound in the metric's unit (latencies in microseconds, money in USD).
    pub value: f64,
}

/// Parses a condition such as `"< 2s"` for `metric`. The error says what
/// is wrong, for the scenario loader to place.
pub fn parse_condition(metric: &Metric, text: &str) -> Result<(Op, f64), String> {
    let t = text.trim();
    let Some((op, rest)) = Op::parse(t) else {
        return Err(format!(
            "`{text}` does not start with <, <=, > or >= (write e.g. \"< 2s\" or \"> 0.999\")"
        ));
    };
    let v = if metric.unit == Unit::Micros {
        let ns = parse_duration(rest).map_err(|e| format!("{}: {e}", metric.name))?;
        ns as f64 / MICROS as f64
    } else {
        let n: f64 = rest.parse().map_err(|_| {
            format!(
                "`{rest}` is not a number; {} is compared with a number{}",
                metric.name,
                match metric.unit {
                    Unit::Fraction => " between 0 and 1 (write 99.9% as 0.999)",
                    Unit::Usd => " of US dollars",
                    Unit::PerSec => " of requests per second",
                    _ => "",
                }
            )
        })?;
        if !n.is_finite() {
            return Err(format!("`{rest}` is not a finite number"));
        }
        n
    };
    Ok((op, v))
}

/// One line of a check.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Passed.
    pub ok: bool,
    /// The strategy.
    pub strategy: String,
    /// What was checked and what was found.
    pub text: String,
}

/// The outcome of `check`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckResult {
    /// Threshold lines.
    pub thresholds: Vec<Verdict>,
    /// Baseline lines.
    pub baseline: Vec<Verdict>,
    /// Remarks that do not fail the gate.
    pub notes: Vec<String>,
}

impl CheckResult {
    /// Whether every line passed.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().chain(&self.baseline).all(|v| v.ok)
    }

    /// The k6-style list.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut block = |title: &str, lines: &[Verdict]| {
            if lines.is_empty() {
                return;
            }
            let _ = writeln!(out, "{title}");
            let mut last = "";
            for v in lines {
                if v.strategy != last {
                    let _ = writeln!(out, "  {}", v.strategy);
                    last = &v.strategy;
                }
                let _ = writeln!(out, "    {} {}", if v.ok { "✓" } else { "✗" }, v.text);
            }
        };
        block("thresholds", &self.thresholds);
        block("baseline", &self.baseline);
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let all = self.thresholds.len() + self.baseline.len();
        let failed = self
            .thresholds
            .iter()
            .chain(&self.baseline)
            .filter(|v| !v.ok)
            .count();
        if failed == 0 {
            let _ = writeln!(out, "PASS: {all} checks passed");
        } else {
            let _ = writeln!(out, "FAIL: {failed} of {all} checks failed");
        }
        out
    }
}

fn strategies(report: &Value) -> Vec<(&str, &Value)> {
    report
        .get("strategies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| (s.get("name").and_then(Value::as_str).unwrap_or("?"), s))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the report's own `expect` thresholds, and the figures against a
/// baseline if one is given.
pub fn check(report: &Value, baseline: Option<&Value>, tolerance: f64) -> CheckResult {
    let mut r = CheckResult::default();
    let expects: Vec<Value> = report
        .get("expect")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (name, s) in strategies(report) {
        for e in &expects {
            let applies = match e.get("strategy").and_then(Value::as_str) {
                None => true,
                Some(x) => x == name,
            };
            if !applies {
                continue;
            }
            let metric_name = e.get("metric").and_then(Value::as_str).unwrap_or("");
            let cond = e.get("condition").and_then(Value::as_str).unwrap_or("");
            let Some(metric) = metric(metric_name) else {
                r.thresholds.push(Verdict {
                    ok: false,
                    strategy: name.into(),
                    text: format!("{metric_name} {cond}: unknown metric"),
                });
                continue;
            };
            let verdict = match (parse_condition(metric, cond), metric.value(s)) {
                (Ok((op, bound)), Some(v)) => Verdict {
                    ok: op.holds(v, bound),
                    strategy: name.into(),
                    text: format!("{metric_name} {cond}: {}", metric.show(v)),
                },
                (Err(e), _) => Verdict {
                    ok: false,
                    strategy: name.into(),
                    text: format!("{metric_name} {cond}: {e}"),
                },
                (_, None) => Verdict {
                    ok: false,
                    strategy: name.into(),
                    text: format!("{metric_name} {cond}: not in the report"),
                },
            };
            r.thresholds.push(verdict);
        }
    }
    if let Some(base) = baseline {
        compare(report, base, tolerance, &mut r);
    }
    r
}

fn compare(report: &Value, base: &Value, tolerance: f64, r: &mut CheckResult) {
    let (rs, bs) = (report.get("scenario"), base.get("scenario"));
    if rs.and_then(|s| s.get("name")) != bs.and_then(|s| s.get("name"))
        || rs.and_then(|s| s.get("seed")) != bs.and_then(|s| s.get("seed"))
    {
        r.notes.push(
            "the report and the baseline differ in scenario name or seed; figures are compared anyway"
                .into(),
        );
    }
    let now = strategies(report);
    let mut identical = true;
    for b in base
        .get("strategies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = b.get("name").and_then(Value::as_str).unwrap_or("?");
        let Some((_, s)) = now.iter().find(|(n, _)| *n == name) else {
            r.baseline.push(Verdict {
                ok: false,
                strategy: name.into(),
                text: "in the baseline but not in the report".into(),
            });
            identical = false;
            continue;
        };
        let Some(figs) = b.get("figures").and_then(Value::as_object) else {
            continue;
        };
        for metric in METRICS {
            let Some(bv) = figs.get(metric.name).and_then(|v| metric.scaled(v)) else {
                continue;
            };
            let Some(v) = metric.value(s) else {
                r.baseline.push(Verdict {
                    ok: false,
                    strategy: name.into(),
                    text: format!("{}: in the baseline, not in the report", metric.name),
                });
                identical = false;
                continue;
            };
            if v == bv {
                continue;
            }
            identical = false;
            let worse = metric.worse(bv, v, tolerance);
            r.baseline.push(Verdict {
                ok: !worse,
                strategy: name.into(),
                text: format!(
                    "{}: {} (baseline {}{})",
                    metric.name,
                    metric.show(v),
                    metric.show(bv),
                    if worse {
                        format!(", worse by more than {}%", tolerance * 100.0)
                    } else if metric.worse(v, bv, 0.0) {
                        ", better: consider --update-baseline".into()
                    } else {
                        ", within tolerance".into()
                    }
                ),
            });
        }
    }
    for (name, _) in &now {
        let known = base
            .get("strategies")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter()
                    .any(|b| b.get("name").and_then(Value::as_str) == Some(name))
            });
        if !known {
            r.notes.push(format!(
                "strategy `{name}` is not in the baseline (run with --update-baseline)"
            ));
        }
    }
    if identical {
        r.notes.push("every baseline figure is identical".into());
    }
}

/// The baseline of a report: per strategy, every figure of [`METRICS`] it
/// has, as written in the report (integers stay integers, so that a
/// baseline compares equal to the report it came from).
pub fn baseline(report: &Value) -> Value {
    let strategies: Vec<Value> = strategies(report)
        .into_iter()
        .map(|(name, s)| {
            let mut figs = serde_json::Map::new();
            for metric in METRICS {
                if let Some(v) = s.pointer(metric.pointer).filter(|v| v.is_number()) {
                    figs.insert(metric.name.into(), v.clone());
                }
            }
            json!({ "name": name, "figures": figs })
        })
        .collect();
    json!({
        "stormglass_baseline": 1,
        "scenario": {
            "name": report.pointer("/scenario/name").cloned().unwrap_or(Value::Null),
            "seed": report.pointer("/scenario/seed").cloned().unwrap_or(Value::Null),
        },
        "strategies": strategies,
    })
}

/// Two reports side by side: per strategy, each figure in A and B and the
/// change, marked better or worse.
pub fn diff(a: &Value, b: &Value) -> String {
    let (sa, sb) = (strategies(a), strategies(b));
    let mut names: Vec<&str> = sa.iter().map(|(n, _)| *n).collect();
    for (n, _) in &sb {
        if !names.contains(n) {
            names.push(n);
        }
    }
    let mut out = String::new();
    for name in names {
        let fa = sa.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
        let fb = sb.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
        let _ = writeln!(out, "{name}");
        let mut rows: Vec<Vec<String>> = Vec::new();
        for metric in METRICS {
            let va = fa.and_then(|s| metric.value(s));
            let vb = fb.and_then(|s| metric.value(s));
            if va.is_none() && vb.is_none() {
                continue;
            }
            let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| metric.show(v));
            let change = match (va, vb) {
                (Some(x), Some(y)) if x == y => "same".to_owned(),
                (Some(x), Some(y)) => {
                    let rel = if x == 0.0 {
                        String::new()
                    } else {
                        format!(" ({:+.1}%)", (y - x) / x.abs() * 100.0)
                    };
                    let way = if metric.worse(x, y, 0.0) {
                        "worse"
                    } else if metric.worse(y, x, 0.0) {
                        "better"
                    } else {
                        "~"
                    };
                    format!("{way}{rel}")
                }
                _ => "only in one".to_owned(),
            };
            rows.push(vec![metric.name.into(), show(va), show(vb), change]);
        }
        let table = super::grid(&["figure", "A", "B", "change"], &rows);
        for line in table.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(success: f64, p99_us: u64, expect: Value) -> Value {
        json!({
            "scenario": { "name": "x", "seed": 1 },
            "expect": expect,
            "strategies": [{
                "name": "s",
                "success_rate": success,
                "amplification": 1.2,
                "latency": { "all": { "p99_us": p99_us } },
            }]
        })
    }

    fn expect(metric: &str, cond: &str) -> Value {
        let m = super::metric(metric).map(|m| parse_condition(m, cond));
        let (op, value) = m.and_then(Result::ok).unwrap_or((Op::Lt, 0.0));
        serde_json::to_value(Expectation {
            strategy: None,
            metric: metric.into(),
            condition: cond.into(),
            op,
            value,
        })
        .unwrap_or_default()
    }

    #[test]
    fn a_threshold_fails_when_crossed_and_passes_when_not() {
        let e = json!([expect("p99", "< 2s"), expect("success", "> 0.99")]);
        let good = check(&report(0.995, 1_900_000, e.clone()), None, 0.0);
        assert!(good.passed(), "{}", good.render());
        let slow = check(&report(0.995, 2_000_000, e.clone()), None, 0.0);
        assert!(!slow.passed());
        assert!(
            slow.render().contains("✗ p99 < 2s: 2.00s"),
            "{}",
            slow.render()
        );
        let failing = check(&report(0.99, 1_000_000, e), None, 0.0);
        assert!(!failing.passed());
    }

    #[test]
    fn a_baseline_fails_only_on_a_worsening_beyond_tolerance() {
        let base = baseline(&report(0.99, 1_000_000, json!([])));
        let same = check(&report(0.99, 1_000_000, json!([])), Some(&base), 0.05);
        assert!(same.passed());
        assert!(same.notes.iter().any(|n| n.contains("identical")));
        let a_bit_slower = check(&report(0.99, 1_040_000, json!([])), Some(&base), 0.05);
        assert!(a_bit_slower.passed(), "{}", a_bit_slower.render());
        let slower = check(&report(0.99, 1_060_000, json!([])), Some(&base), 0.05);
        assert!(!slower.passed());
        let faster = check(&report(0.99, 500_000, json!([])), Some(&base), 0.05);
        assert!(faster.passed());
        // 1% failures -> 2% failures is twice as bad, although 0.98 is
        // within 5% of 0.99.
        let worse_success = check(&report(0.98, 1_000_000, json!([])), Some(&base), 0.05);
        assert!(!worse_success.passed(), "{}", worse_success.render());
    }

    #[test]
    fn conditions_parse_with_units_and_refuse_nonsense() {
        let p99 = metric("p99").map(|m| parse_condition(m, "<= 250ms"));
        assert_eq!(p99, Some(Ok((Op::Le, 250_000.0))));
        let s = metric("success").map(|m| parse_condition(m, ">0.999"));
        assert_eq!(s, Some(Ok((Op::Gt, 0.999))));
        assert!(metric("p99").is_some_and(|m| parse_condition(m, "< 2").is_err()));
        assert!(metric("success").is_some_and(|m| parse_condition(m, "= 1").is_err()));
        assert!(metric("cost").is_some_and(|m| parse_condition(m, "< lots").is_err()));
    }
}
