//! `[slo]` and `[[expect]]`: what the report judges a strategy by, resolved
//! from the file with errors placed at the offending key.

use std::collections::BTreeSet;

use toml::Spanned;

use crate::report::check::{self, Expectation};
use crate::report::slo::{BurnAlert, SloConfig};

use super::error::{known_hint, ScenarioError};
use super::load::{FileId, Sources};
use super::schema::{ExpectSection, SloSection};

type R<T> = Result<T, ScenarioError>;

/// Resolves `[slo]`: defaults for what is not given, alerts checked.
pub(super) fn slo(
    src: &Sources,
    slo: Option<&(FileId, Spanned<SloSection>)>,
) -> R<Option<SloConfig>> {
    let Some((file, section)) = slo else {
        return Ok(None);
    };
    let s = section.get_ref();
    let d = SloConfig::default();
    let mut cfg = SloConfig {
        availability: s.availability.map_or(d.availability, |p| p.0),
        latency_ns: s.latency.map_or(d.latency_ns, |l| l.0),
        latency_quantile: s.latency_quantile.map_or(d.latency_quantile, |p| p.0),
        ttft_ns: s.ttft.map(|t| t.0),
        error_rate: s.error_rate.map_or(d.error_rate, |p| p.0),
        window_ns: s.window.map_or(d.window_ns, |w| w.0),
        alerts: d.alerts,
    };
    for (what, target) in [
        ("availability", cfg.availability),
        ("latency_quantile", cfg.latency_quantile),
    ] {
        if target >= 1.0 || target <= 0.0 {
            return Err(src
                .error_at(
                    *file,
                    section,
                    format!("slo.{what} = {target} leaves no error budget or no objective"),
                )
                .hint("a target is a share strictly between 0 and 1, such as 0.999"));
        }
    }
    if cfg.error_rate <= 0.0 || cfg.error_rate >= 1.0 {
        return Err(src
            .error_at(
                *file,
                section,
                format!(
                    "slo.error_rate = {} leaves no error budget or no objective",
                    cfg.error_rate
                ),
            )
            .hint("the share of attempts that may fail, strictly between 0 and 1, such as 0.001"));
    }
    if !s.alert.is_empty() {
        cfg.alerts = Vec::new();
        for a in &s.alert {
            let av = a.get_ref();
            if av.short.0 > av.long.0 {
                return Err(src
                    .error_at(*file, a, "an alert's short window is longer than its long window")
                    .hint("the workbook pairs a long window with one about 1/12 of it: long = \"1h\", short = \"5m\""));
            }
            let mut alert = BurnAlert::new(av.long.0, av.short.0, av.burn_rate.0);
            if let Some(n) = &av.name {
                alert.name.clone_from(n);
            }
            cfg.alerts.push(alert);
        }
    }
    Ok(Some(cfg))
}

/// Resolves `[[expect]]` entries against the strategy names.
pub(super) fn expect(
    src: &Sources,
    entries: &[(FileId, Spanned<ExpectSection>)],
    strategies: &[String],
    has_slo: bool,
) -> R<Vec<Expectation>> {
    let known: BTreeSet<&str> = strategies.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for (file, entry) in entries {
        let e = entry.get_ref();
        let strategy = match &e.strategy {
            None => None,
            Some(name) => {
                if !known.contains(name.get_ref().as_str()) {
                    return Err(src
                        .error_at(
                            *file,
                            name,
                            format!("unknown strategy `{}`", name.get_ref()),
                        )
                        .hint(known_hint(
                            "strategies defined",
                            name.get_ref(),
                            strategies.iter().map(String::as_str),
                        )));
                }
                Some(name.get_ref().clone())
            }
        };
        let given = [
            ("success", &e.success),
            ("amplification", &e.amplification),
            ("p50", &e.p50),
            ("p90", &e.p90),
            ("p95", &e.p95),
            ("p99", &e.p99),
            ("p999", &e.p999),
            ("ttft_p99", &e.ttft_p99),
            ("tpot_p50", &e.tpot_p50),
            ("recovery", &e.recovery),
            ("cost", &e.cost),
            ("cost_per_1k", &e.cost_per_1k),
            ("goodput", &e.goodput),
            ("error_budget", &e.error_budget),
        ];
        let mut any = false;
        for (name, cond) in given {
            let Some(cond) = cond else { continue };
            any = true;
            let Some(metric) = check::metric(name) else {
                continue;
            };
            if !has_slo && matches!(name, "goodput" | "error_budget") {
                return Err(src
                    .error_at(*file, cond, format!("`{name}` needs an [slo] section"))
                    .hint("add [slo] (its defaults: availability 0.999, p99 under 2s) or drop this threshold"));
            }
            let (op, value) = check::parse_condition(metric, cond.get_ref()).map_err(|m| {
                src.error_at(*file, cond, m).hint(
                    "a threshold is an operator and a value: \"< 2s\", \"> 0.999\", \"<= 1.5\"",
                )
            })?;
            out.push(Expectation {
                strategy: strategy.clone(),
                metric: name.into(),
                condition: cond.get_ref().trim().to_owned(),
                op,
                value,
            });
        }
        if !any {
            return Err(src
                .error_at(*file, entry, "this [[expect]] sets no threshold")
                .hint("add e.g. `p99 = \"< 2s\"` or `success = \"> 0.999\"`"));
        }
    }
    Ok(out)
}
