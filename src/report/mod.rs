//! Reports: histograms, the figures of a run, `report.json` and the console
//! comparison table.

pub mod collect;
pub mod hist;
pub mod json;

use std::fmt::Write as _;
use std::path::Path;

use crate::units::{format_latency, MICROS};

pub use collect::{AttemptEnd, Collector};
pub use hist::{LatencyHist, LatencySummary};
pub use json::{Report, StrategyReport, SCHEMA_VERSION};

/// The report as pretty JSON with a trailing newline.
pub fn to_json(r: &Report) -> String {
    let mut s =
        serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// Writes `report.json` into `dir`, creating it.
pub fn write(r: &Report, dir: &Path) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("report.json");
    std::fs::write(&path, to_json(r))?;
    Ok(path)
}

/// The comparison table: one row per strategy.
pub fn table(r: &Report) -> String {
    let header = [
        "strategy",
        "requests",
        "success",
        "attempts/req",
        "p50",
        "p99",
        "p99.9",
        "cost USD",
        "USD/1k ok",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    for s in &r.strategies {
        let l = &s.latency.all;
        rows.push([
            s.name.clone(),
            s.requests.to_string(),
            format!("{:.2}%", s.success_rate * 100.0),
            format!("{:.3}", s.amplification),
            format_latency(l.p50_us * MICROS),
            format_latency(l.p99_us * MICROS),
            format_latency(l.p999_us * MICROS),
            format!("{:.4}", s.cost.nano_usd as f64 / 1e9),
            s.cost_per_1k_successes
                .map_or("-".into(), |c| format!("{:.4}", c.nano_usd as f64 / 1e9)),
        ]);
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "{c:<w$}", w = widths[0]);
            } else {
                let _ = write!(out, "  {c:>w$}", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(&mut out, &header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(
        &mut out,
        &rule.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for row in &rows {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out.push_str("latency: all requests, end to end (failures at the time they gave up)\n");
    out
}
