//! Reports: histograms, the figures of a run, `report.json` and the console
//! comparison table.

pub mod chart;
pub mod check;
pub mod collect;
pub mod hist;
pub mod incident;
pub mod json;
pub mod seeds;
pub mod slo;
pub mod summary;

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

/// Writes `report.json`, `report.md`, `report.html` and one SVG per chart
/// into `dir`; returns the paths written, `report.json` first.
pub fn write_all(r: &Report, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    write_all_as(r, dir, chart::ChartFormat::Svg)
}

/// [`write_all`], with the charts written as SVG, PNG or both.
pub fn write_all_as(
    r: &Report,
    dir: &Path,
    format: chart::ChartFormat,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut paths = vec![write(r, dir)?];
    let charts =
        chart::all(r, format.png()).map_err(|e| anyhow::anyhow!("drawing the charts: {e}"))?;
    let value = serde_json::to_value(r)?;
    let verdicts = check::check(&value, None, 0.0);
    let mut listed = Vec::new();
    for c in &charts {
        let mut files: Vec<(String, &[u8])> = Vec::new();
        if format.svg() {
            files.push((format!("{}.svg", c.name), c.svg.as_bytes()));
        }
        if let Some(png) = &c.png {
            files.push((format!("{}.png", c.name), png));
        }
        for (file, bytes) in files {
            let path = dir.join(&file);
            std::fs::write(&path, bytes)?;
            listed.push((file, c.title.clone()));
            paths.push(path);
        }
    }
    let md = dir.join("report.md");
    std::fs::write(&md, summary::markdown(r, &verdicts, &listed))?;
    paths.push(md);
    let html = dir.join("report.html");
    std::fs::write(&html, summary::html(r, &verdicts, &charts))?;
    paths.push(html);
    Ok(paths)
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

/// One line per strategy with `layers`: each loop's passes and retries,
/// outermost first, then what reached the provider (empty without layers).
pub fn layer_lines(r: &Report) -> String {
    let mut out = String::new();
    for s in r.strategies.iter().filter(|s| !s.layers.is_empty()) {
        let loops: Vec<String> = s
            .layers
            .iter()
            .map(|l| {
                // A layer's timeout shows only where it ended passes (of
                // the loops inside it).
                let timed_out = match l.pass_timeouts {
                    0 => String::new(),
                    n => format!(", {n} passes inside timed out"),
                };
                format!(
                    "{} {} passes, {} retries{timed_out}",
                    l.name, l.passes, l.retries
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "layers of {}: {} > own loop: {} attempts for {} requests ({:.3}/req)",
            s.name,
            loops.join(" > "),
            s.attempts,
            s.requests,
            s.amplification
        );
    }
    out
}

/// The SLO verdicts, one row per strategy (empty without `[slo]`).
pub fn slo_lines(r: &Report) -> String {
    let Some(cfg) = &r.scenario.slo else {
        return String::new();
    };
    let within = format!("<= {}", format_latency(cfg.latency_ns));
    let header = [
        "strategy",
        "SLO",
        "available",
        within.as_str(),
        "attempt errors",
        "goodput/s",
        "budget spent",
        "worst burn",
        "first page",
    ];
    let mut rows = Vec::new();
    for s in &r.strategies {
        let Some(slo) = &s.slo else { continue };
        let o = |name: &str| slo.objectives.iter().find(|o| o.name == name);
        let mark = |name: &str, bad: bool| {
            o(name).map_or("-".to_owned(), |o| {
                let v = if bad { 1.0 - o.actual } else { o.actual };
                format!("{}{}", pct(v), if o.met { "" } else { " ✗" })
            })
        };
        let first_page = slo
            .objectives
            .iter()
            .filter_map(|o| o.alerts.first().and_then(|a| a.firings.first()))
            .map(|f| f.at_ns)
            .min();
        let avail = o("availability");
        rows.push(vec![
            s.name.clone(),
            if slo.met { "met" } else { "MISSED" }.to_owned(),
            mark("availability", false),
            mark("latency", false),
            mark("error_rate", true),
            format!("{:.2}", slo.goodput_rps),
            avail.map_or("-".into(), |o| format!("{:.2}%", o.budget_consumed * 100.0)),
            avail.map_or("-".into(), |o| format!("{:.1}x", o.worst_burn_rate)),
            first_page.map_or("-".into(), summary::clock),
        ]);
    }
    let mut out =
        format!(
        "SLO: {} available, {} of requests within {}{}, under {} attempt errors; budget over {}\n",
        pct(cfg.availability),
        pct(cfg.latency_quantile),
        format_latency(cfg.latency_ns),
        cfg.ttft_ns
            .map_or(String::new(), |t| format!(" and first token within {}", format_latency(t))),
        pct(cfg.error_rate),
        window(cfg.window_ns),
    );
    out.push_str(&grid(&header, &rows));
    out.push_str(
        "failures count as misses of the latency objective; goodput = requests/s that met it; \
         budget and burn are availability's; first page = when the first alert first fired\n",
    );
    out
}

/// A plain-text table: first column left-aligned, the others right-aligned.
pub fn grid(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i == 0 {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
        }
        out.push('\n');
    };
    line(&mut out, header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(
        &mut out,
        &rule.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for row in rows {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

/// An SLO window: whole days as days ("30d"), else as a duration.
pub fn window(ns: u64) -> String {
    const DAY: u64 = 24 * crate::units::HOURS;
    if ns >= DAY && ns % DAY == 0 {
        format!("{}d", ns / DAY)
    } else {
        crate::units::format_duration(ns)
    }
}

/// A share as a percentage with up to three decimals ("99.9%", "37.745%").
pub fn pct(x: f64) -> String {
    let p = (x * 100.0 * 1000.0).round() / 1000.0;
    format!("{p}%")
}
