//! Multi-seed runs: every figure's mean and 95% confidence interval over
//! seeds, and strategies compared by their paired per-seed differences.
//!
//! Within one seed every strategy meets the same arrivals and the same
//! provider luck (common random numbers), so the difference between two
//! strategies on a seed removes most of the noise both share. The interval
//! of the mean difference is therefore much narrower than the two intervals
//! side by side would suggest, and a difference is called "within noise"
//! only when that paired interval contains zero.
//!
//! Intervals use Student's t with n - 1 degrees of freedom (normal beyond
//! 30), over the seeds' values of a figure as `report.json` gives it.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::check::{Better, Metric, METRICS};
use super::json::Report;

/// Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The t quantile for a 95% interval with `df` degrees of freedom.
pub fn t975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T975[df - 1],
        // Between the table's end and the normal quantile, close enough.
        _ => 1.96 + (2.042 - 1.96) * 30.0 / df as f64,
    }
}

/// Mean and 95% interval of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub sd: f64,
    /// Half-width of the 95% confidence interval of the mean (`null` in JSON
    /// with one value).
    pub ci95: Option<f64>,
}

impl Estimate {
    /// From values.
    pub fn of(v: &[f64]) -> Option<Self> {
        let n = v.len();
        if n == 0 {
            return None;
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let ci95 = (n > 1).then(|| t975(n - 1) * sd / (n as f64).sqrt());
        Some(Self {
            n,
            mean: round9(mean),
            sd: round9(sd),
            ci95: ci95.map(round9),
        })
    }

    /// Whether the interval contains zero (for a difference: within noise).
    pub fn contains_zero(&self) -> bool {
        match self.ci95 {
            Some(h) => self.mean - h <= 0.0 && 0.0 <= self.mean + h,
            None => self.mean == 0.0,
        }
    }
}

fn round9(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e9).round() / 1e9
    } else {
        x
    }
}

/// One figure of one strategy over the seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// The metric's name (as in `[[expect]]`).
    pub metric: &'static str,
    /// Over the seeds.
    pub estimate: Estimate,
    /// Paired difference against the reference strategy (`null` for the
    /// reference itself).
    pub vs_reference: Option<Difference>,
}

/// A paired difference.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    /// This strategy minus the reference, seed by seed.
    pub estimate: Estimate,
    /// `better`, `worse`, `within noise` or `no difference`.
    pub verdict: &'static str,
}

/// One strategy over the seeds.
#[derive(Clone, Debug, Serialize)]
pub struct StrategySeeds {
    /// Name.
    pub name: String,
    /// Figures in [`METRICS`] order (those the reports have).
    pub figures: Vec<Figure>,
}

/// `seeds.json`.
#[derive(Clone, Debug, Serialize)]
pub struct SeedsReport {
    /// Scenario name.
    pub scenario: String,
    /// The seeds run.
    pub seeds: Vec<u64>,
    /// The strategy differences are taken against (the first in the file).
    pub reference: String,
    /// Per strategy.
    pub strategies: Vec<StrategySeeds>,
}

fn verdict(metric: &Metric, d: &Estimate) -> &'static str {
    if d.mean == 0.0 && d.sd == 0.0 {
        "no difference"
    } else if d.contains_zero() {
        "within noise"
    } else if (d.mean < 0.0) == (metric.better == Better::Lower) {
        "better"
    } else {
        "worse"
    }
}

/// Aggregates one report per seed (same scenario and strategies).
pub fn aggregate(reports: &[Report]) -> SeedsReport {
    let values: Vec<Value> = reports
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    let names: Vec<String> = reports
        .first()
        .map(|r| r.strategies.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    // per seed, per strategy: the strategy's JSON section
    let section = |seed: usize, j: usize| values[seed].pointer(&format!("/strategies/{j}"));
    let series = |j: usize, m: &Metric| -> Vec<Option<f64>> {
        (0..values.len())
            .map(|k| section(k, j).and_then(|s| m.value(s)))
            .collect()
    };
    let strategies = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let figures = METRICS
                .iter()
                .filter_map(|m| {
                    let mine = series(j, m);
                    let present: Vec<f64> = mine.iter().flatten().copied().collect();
                    let estimate = Estimate::of(&present)?;
                    let vs_reference = (j > 0).then(|| {
                        let reference = series(0, m);
                        let diffs: Vec<f64> = mine
                            .iter()
                            .zip(&reference)
                            .filter_map(|(a, b)| Some((*a)? - (*b)?))
                            .collect();
                        Estimate::of(&diffs).map(|e| Difference {
                            verdict: verdict(m, &e),
                            estimate: e,
                        })
                    });
                    Some(Figure {
                        metric: m.name,
                        estimate,
                        vs_reference: vs_reference.flatten(),
                    })
                })
                .collect();
            StrategySeeds {
                name: name.clone(),
                figures,
            }
        })
        .collect();
    SeedsReport {
        scenario: reports
            .first()
            .map(|r| r.scenario.name.clone())
            .unwrap_or_default(),
        seeds: reports.iter().map(|r| r.scenario.seed).collect(),
        reference: names.first().cloned().unwrap_or_default(),
        strategies,
    }
}

/// Figures shown in the console table.
const SHOWN: [&str; 6] = [
    "success",
    "amplification",
    "p50",
    "p99",
    "goodput",
    "cost_per_1k",
];

fn show(m: &Metric, e: &Estimate) -> String {
    match e.ci95 {
        Some(h) => format!("{} ± {}", m.show(e.mean), m.show(h)),
        None => m.show(e.mean),
    }
}

/// The console (and `seeds.md`) summary.
pub fn table(s: &SeedsReport) -> String {
    let shown: Vec<&Metric> = METRICS
        .iter()
        .filter(|m| SHOWN.contains(&m.name))
        .filter(|m| {
            s.strategies
                .iter()
                .any(|st| st.figures.iter().any(|f| f.metric == m.name))
        })
        .collect();
    let mut header = vec!["strategy"];
    header.extend(shown.iter().map(|m| m.name));
    let find =
        |st: &StrategySeeds, name: &str| st.figures.iter().find(|f| f.metric == name).cloned();
    let rows: Vec<Vec<String>> = s
        .strategies
        .iter()
        .map(|st| {
            let mut row = vec![st.name.clone()];
            for m in &shown {
                row.push(find(st, m.name).map_or("-".into(), |f| show(m, &f.estimate)));
            }
            row
        })
        .collect();
    let mut out = format!(
        "{}: {} seeds ({}), mean ± 95% confidence interval\n",
        s.scenario,
        s.seeds.len(),
        seed_range(&s.seeds)
    );
    out.push_str(&super::grid(&header, &rows));
    let _ = writeln!(
        out,
        "\npaired per-seed differences against {} (mean ± 95% CI):",
        s.reference
    );
    let rows: Vec<Vec<String>> =
        s.strategies
            .iter()
            .skip(1)
            .map(|st| {
                let mut row = vec![st.name.clone()];
                for m in &shown {
                    row.push(find(st, m.name).and_then(|f| f.vs_reference).map_or(
                        "-".into(),
                        |d| {
                            let sign = if d.estimate.mean >= 0.0 { "+" } else { "-" };
                            let abs = Estimate {
                                mean: d.estimate.mean.abs(),
                                ..d.estimate
                            };
                            format!("{sign}{} ({})", show(m, &abs), d.verdict)
                        },
                    ));
                }
                row
            })
            .collect();
    out.push_str(&super::grid(&header, &rows));
    out.push_str("\"within noise\": the paired interval contains zero; every strategy meets the same traffic and provider luck within a seed\n");
    out
}

fn seed_range(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if seeds.len() > 1 => format!("{a}..={b}"),
        (Some(a), _) => a.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_known_sample() {
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap_or(Estimate {
            n: 0,
            mean: 0.0,
            sd: 0.0,
            ci95: None,
        });
        assert_eq!(e.mean, 3.0);
        assert!((e.sd - 2.5f64.sqrt()).abs() < 1e-9);
        let h = 2.776 * 2.5f64.sqrt() / 5f64.sqrt();
        assert!((e.ci95.unwrap_or(0.0) - h).abs() < 1e-6);
        assert!(!e.contains_zero());
        let one = Estimate::of(&[7.0]).map(|e| e.ci95);
        assert_eq!(one, Some(None));
    }

    #[test]
    fn t_quantiles_fall_towards_the_normal() {
        assert!(t975(1) > t975(2) && t975(29) > t975(30) && t975(30) > t975(100));
        assert!((t975(10_000) - 1.96).abs() < 0.01);
    }
}
