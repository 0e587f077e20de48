//! The human outputs: a Markdown summary for a pull-request comment and a
//! single-file HTML report with the charts inlined (no scripts, no network
//! fetches). Both are built from the same rows, so they say the same thing.

use std::fmt::Write as _;

use crate::units::{format_duration, format_latency, MICROS};

use super::chart::Chart;
use super::check::CheckResult;
use super::incident::Recovery;
use super::json::{Report, StrategyReport};
use super::pct;

/// Which way a column is better, for marking the best value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Best {
    Lower,
    Higher,
    None,
}

/// The comparison table: header, rows of text, and per column the index of
/// the row with the best value (if the column has a best).
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    best: Vec<Option<usize>>,
}

fn pick(values: &[Option<f64>], way: Best) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = *v else { continue };
        let better = match (best, way) {
            (None, _) => true,
            (Some((_, b)), Best::Lower) => v < b,
            (Some((_, b)), Best::Higher) => v > b,
            (Some(_), Best::None) => false,
        };
        if better {
            best = Some((i, v));
        }
    }
    // A column where every strategy ties has no best.
    let distinct = values
        .iter()
        .flatten()
        .any(|v| Some(*v) != values.iter().flatten().next().copied());
    if way == Best::None || !distinct {
        None
    } else {
        best.map(|b| b.0)
    }
}

fn comparison(r: &Report) -> Table {
    type Col = (
        &'static str,
        Best,
        fn(&StrategyReport) -> Option<f64>,
        fn(f64) -> String,
    );
    let lat = |us: f64| format_latency(us as u64 * MICROS);
    let cols: Vec<Col> = vec![
        (
            "requests",
            Best::None,
            |s| Some(s.requests as f64),
            |v| format!("{v}"),
        ),
        ("success", Best::Higher, |s| Some(s.success_rate), pct),
        (
            "attempts/req",
            Best::Lower,
            |s| Some(s.amplification),
            |v| format!("{v:.3}"),
        ),
        (
            "p50",
            Best::Lower,
            |s| Some(s.latency.all.p50_us as f64),
            lat,
        ),
        (
            "p99",
            Best::Lower,
            |s| Some(s.latency.all.p99_us as f64),
            lat,
        ),
        (
            "p99.9",
            Best::Lower,
            |s| Some(s.latency.all.p999_us as f64),
            lat,
        ),
        (
            "TTFT p99",
            Best::Lower,
            |s| Some(s.latency.ttft.p99_us as f64),
            lat,
        ),
        (
            "TPOT p50",
            Best::Lower,
            |s| Some(s.latency.tpot.p50_us as f64),
            lat,
        ),
        (
            "goodput/s",
            Best::Higher,
            |s| s.slo.as_ref().map(|x| x.goodput_rps),
            |v| format!("{v:.2}"),
        ),
        (
            "cost USD",
            Best::Lower,
            |s| Some(s.cost.nano_usd as f64 / 1e9),
            |v| format!("{v:.4}"),
        ),
        (
            "USD/1k ok",
            Best::Lower,
            |s| s.cost_per_1k_successes.map(|c| c.nano_usd as f64 / 1e9),
            |v| format!("{v:.4}"),
        ),
    ];
    let cols: Vec<Col> = cols
        .into_iter()
        .filter(|c| c.0 != "goodput/s" || r.scenario.slo.is_some())
        .collect();
    let mut header = vec!["strategy".to_owned()];
    header.extend(cols.iter().map(|c| c.0.to_owned()));
    let mut best = vec![None];
    let mut rows: Vec<Vec<String>> = r.strategies.iter().map(|s| vec![s.name.clone()]).collect();
    for (_, way, get, show) in &cols {
        let values: Vec<Option<f64>> = r.strategies.iter().map(get).collect();
        best.push(pick(&values, *way));
        for (row, v) in rows.iter_mut().zip(&values) {
            row.push(v.map_or("-".to_owned(), show));
        }
    }
    Table { header, rows, best }
}

fn slo_rows(r: &Report) -> Option<(String, Table)> {
    let cfg = r.scenario.slo.as_ref()?;
    let targets =
        format!(
        "{} of requests succeed; {} within {}{}; under {} of attempts fail; error budget over {}",
        pct(cfg.availability),
        pct(cfg.latency_quantile),
        format_latency(cfg.latency_ns),
        cfg.ttft_ns
            .map_or(String::new(), |t| format!(" (first token within {})", format_latency(t))),
        pct(cfg.error_rate),
        super::window(cfg.window_ns)
    );
    let header = [
        "strategy",
        "SLO",
        "available",
        "fast enough",
        "attempt errors",
        "budget spent",
        "worst burn",
        "p at quantile (failures = misses)",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut rows = Vec::new();
    for s in &r.strategies {
        let Some(slo) = &s.slo else { continue };
        let o = |i: usize, bad: bool| {
            slo.objectives.get(i).map_or("-".to_owned(), |o| {
                let v = if bad { 1.0 - o.actual } else { o.actual };
                format!("{} {}", pct(v), if o.met { "✓" } else { "✗" })
            })
        };
        let a = slo.objectives.first();
        rows.push(vec![
            s.name.clone(),
            if slo.met { "met" } else { "missed" }.to_owned(),
            o(0, false),
            o(1, false),
            o(2, true),
            a.map_or("-".into(), |o| format!("{:.2}%", o.budget_consumed * 100.0)),
            a.map_or("-".into(), |o| format!("{:.1}x", o.worst_burn_rate)),
            slo.latency_at_quantile_us
                .map_or("unreachable".into(), |us| format_latency(us * MICROS)),
        ]);
    }
    let n = header.len();
    Some((
        targets,
        Table {
            header,
            rows,
            best: vec![None; n],
        },
    ))
}

/// Virtual time as minutes and seconds ("4m16s").
pub fn clock(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m{sec:02}s"),
        _ => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// Alerts that fired, one row per (strategy, objective): the alerts and
/// their firing spans.
fn alerts(r: &Report) -> Vec<[String; 3]> {
    let mut out = Vec::new();
    for s in &r.strategies {
        let Some(slo) = &s.slo else { continue };
        for o in &slo.objectives {
            let fired: Vec<String> = o
                .alerts
                .iter()
                .filter(|a| a.times_fired > 0)
                .map(|a| {
                    let spans: Vec<String> = a
                        .firings
                        .iter()
                        .map(|f| format!("{} to {}", clock(f.at_ns), clock(f.until_ns)))
                        .collect();
                    let more = (a.times_fired as usize).saturating_sub(a.firings.len());
                    format!(
                        "{}: {}{}",
                        a.name,
                        spans.join(", "),
                        if more > 0 {
                            format!(" (and {more} more)")
                        } else {
                            String::new()
                        }
                    )
                })
                .collect();
            if !fired.is_empty() {
                out.push([s.name.clone(), o.name.to_owned(), fired.join("; ")]);
            }
        }
    }
    out
}

/// Per strategy and incident: success and p99 during it, and recovery.
fn incident_rows(r: &Report) -> Option<Table> {
    let mut rows = Vec::new();
    for s in &r.strategies {
        for i in &s.incidents {
            rows.push(vec![
                s.name.clone(),
                i.name.clone(),
                i.requests.to_string(),
                i.success_rate.map_or("-".into(), pct),
                if i.requests == 0 {
                    "-".into()
                } else {
                    format_latency(i.latency.p99_us * MICROS)
                },
                i.before_success_rate.map_or("-".into(), pct),
                match (i.recovery, i.recovery_ns) {
                    (Recovery::Recovered, Some(ns)) => format_latency(ns),
                    (Recovery::Recovered | Recovery::DidNotRecover, _) => "did not recover".into(),
                    (Recovery::NotEnded, _) => "had not ended by the end of the run".into(),
                    (Recovery::NoLevelBefore, _) => "no level before".into(),
                },
            ]);
        }
    }
    if rows.is_empty() {
        return None;
    }
    let header = [
        "strategy",
        "incident",
        "requests during",
        "success during",
        "p99 during",
        "success before",
        "recovery after its end",
    ]
    .map(str::to_owned)
    .to_vec();
    let n = header.len();
    Some(Table {
        header,
        rows,
        best: vec![None; n],
    })
}

/// Exemplars as text lines: per strategy, one line per request with its
/// attempts (the first 8).
fn exemplar_lines(r: &Report) -> Vec<(String, Vec<String>)> {
    let secs = |ns: u64| format!("{:.2}s", ns as f64 / 1e9);
    r.strategies
        .iter()
        .filter(|s| !s.exemplars.is_empty())
        .map(|s| {
            let lines = s
                .exemplars
                .iter()
                .map(|e| {
                    let mut steps: Vec<String> = e
                        .attempts
                        .iter()
                        .take(8)
                        .map(|a| {
                            let took = a.end_ns.map_or("no end".into(), |end| {
                                format_latency(end.saturating_sub(a.start_ns))
                            });
                            let wait = a
                                .wait_before_next_ns
                                .map_or(String::new(), |w| format!(", wait {}", secs(w)));
                            format!(
                                "+{} {}/{}: {} after {}{}",
                                secs(a.start_ns.saturating_sub(e.arrived_ns)),
                                a.model,
                                a.key,
                                a.outcome,
                                took,
                                wait
                            )
                        })
                        .collect();
                    let more = e.attempts.len().saturating_sub(8) + e.attempts_not_shown as usize;
                    if more > 0 {
                        steps.push(format!("{more} more attempts"));
                    }
                    format!(
                        "request {} ({}; arrived {}, {} in {}, {} attempts): {}",
                        e.request,
                        e.why,
                        clock(e.arrived_ns),
                        e.result,
                        format_latency(e.latency_us * MICROS),
                        e.attempts.len() + e.attempts_not_shown as usize,
                        steps.join("; ")
                    )
                })
                .collect();
            (s.name.clone(), lines)
        })
        .collect()
}

const EXEMPLAR_NOTE: &str = "Exemplars: the slowest requests and the first failure of each reason, attempt by attempt (time from arrival, model/key, outcome, how long it took, the wait before the next).";

const RECOVERY_NOTE: &str = "Recovery: until the success rate over a sliding 10 s is back within 1 point of its level in the 5 minutes before the incident and stays there 30 s (windows of 10 requests or more). Requests count when they finish. An incident still running when arrivals stopped \"had not ended by the end of the run\": there was no traffic after it to recover with.";

fn intro(r: &Report) -> String {
    let sc = &r.scenario;
    let mut s = format!(
        "Seed {}, {} of arrivals (the first {} left out as warm-up), {} strategies, stormglass {} ({}).",
        sc.seed,
        format_duration(sc.duration_ns),
        format_duration(sc.warmup_ns),
        r.strategies.len(),
        r.stormglass_version,
        r.mode
    );
    if !sc.incidents.is_empty() {
        let list: Vec<String> = sc
            .incidents
            .iter()
            .map(|i| format!("{} ({} to {})", i.name, clock(i.start_ns), clock(i.end_ns)))
            .collect();
        let _ = write!(s, " Incidents: {}.", list.join("; "));
    }
    s
}

const LATENCY_NOTE: &str = "Latency is over all requests, failures at the time they gave up; percentiles are the tops of their HDR buckets (0.1% resolution).";

fn md_table(t: &Table) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", t.header.join(" | "));
    let rule: Vec<&str> = t
        .header
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    for (ri, row) in t.rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                if t.best.get(ci).copied().flatten() == Some(ri) {
                    format!("**{c}**")
                } else {
                    c.clone()
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// `report.md`: for a pull-request comment.
pub fn markdown(r: &Report, check: &CheckResult, charts: &[(String, String)]) -> String {
    let mut out = format!(
        "# {}: stormglass report\n\n{}\n\n",
        r.scenario.name,
        intro(r)
    );
    out.push_str("## Strategies\n\n");
    out.push_str(&md_table(&comparison(r)));
    let _ = writeln!(out, "\nBest value per column in **bold**. {LATENCY_NOTE}\n");
    let layers = super::layer_lines(r);
    if !layers.is_empty() {
        for l in layers.lines() {
            let _ = writeln!(out, "- {l}");
        }
        out.push('\n');
    }
    if let Some((targets, t)) = slo_rows(r) {
        let _ = writeln!(out, "## SLO\n\nTargets: {targets}.\n");
        out.push_str(&md_table(&t));
        out.push_str("\nFailures count as misses of the latency objective; budget and burn rate are availability's.\n\n");
        let fired = alerts(r);
        out.push_str("### Burn-rate alerts\n\n");
        if fired.is_empty() {
            out.push_str("No alert fired.\n\n");
        } else {
            out.push_str(
                "| strategy | objective | alerts firing (virtual time) |\n|---|---|---|\n",
            );
            for a in fired {
                let _ = writeln!(out, "| {} |", a.join(" | "));
            }
            out.push('\n');
        }
    }
    if let Some(t) = incident_rows(r) {
        out.push_str("## Incidents\n\n");
        out.push_str(&md_table(&t));
        let _ = writeln!(out, "\n{RECOVERY_NOTE}\n");
    }
    let ex = exemplar_lines(r);
    if !ex.is_empty() {
        let _ = writeln!(out, "## Exemplars\n\n{EXEMPLAR_NOTE}\n");
        for (name, lines) in ex {
            let _ = writeln!(out, "**{name}**\n");
            for l in lines {
                let _ = writeln!(out, "- {l}");
            }
            out.push('\n');
        }
    }
    if !check.thresholds.is_empty() {
        out.push_str("## Thresholds\n\n");
        for v in &check.thresholds {
            let _ = writeln!(
                out,
                "- {} {}: {}",
                if v.ok { "✓" } else { "✗" },
                v.strategy,
                v.text
            );
        }
        out.push('\n');
    }
    if !charts.is_empty() {
        out.push_str("## Charts\n\n");
        for (file, title) in charts {
            let _ = writeln!(out, "- [{title}]({file})");
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_table(t: &Table) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in &t.header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (ri, row) in t.rows.iter().enumerate() {
        out.push_str("<tr>");
        for (ci, c) in row.iter().enumerate() {
            let best = t.best.get(ci).copied().flatten() == Some(ri);
            let _ = write!(
                out,
                "<td{}>{}</td>",
                if best { " class=\"best\"" } else { "" },
                esc(c)
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}td.best{font-weight:bold;background:#e8f4ec}\
.ok{color:#087a3e}.fail{color:#b42318}figure{margin:1.2em 0}figcaption{font-weight:600;margin-bottom:.3em}\
svg{max-width:100%;height:auto}.note{color:#555;font-size:.9em}ul.ex li{font-size:.85em;margin:.3em 0}";

/// `report.html`: one file, charts inlined as SVG, no scripts.
pub fn html(r: &Report, check: &CheckResult, charts: &[Chart]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{} - stormglass report</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&r.scenario.name)
    );
    let _ = writeln!(
        out,
        "<h1>{}: stormglass report</h1>\n<p>{}</p>",
        esc(&r.scenario.name),
        esc(&intro(r))
    );
    out.push_str("<h2>Strategies</h2>\n");
    out.push_str(&html_table(&comparison(r)));
    let _ = writeln!(
        out,
        "<p class=\"note\">Best value per column highlighted. {}</p>",
        esc(LATENCY_NOTE)
    );
    if let Some((targets, t)) = slo_rows(r) {
        let _ = writeln!(out, "<h2>SLO</h2>\n<p>Targets: {}.</p>", esc(&targets));
        out.push_str(&html_table(&t));
        out.push_str("<p class=\"note\">Failures count as misses of the latency objective; budget and burn rate are availability's.</p>\n<h3>Burn-rate alerts</h3>\n");
        let fired = alerts(r);
        if fired.is_empty() {
            out.push_str("<p>No alert fired.</p>\n");
        } else {
            let t = Table {
                header: ["strategy", "objective", "alerts firing (virtual time)"]
                    .map(str::to_owned)
                    .to_vec(),
                rows: fired.into_iter().map(|a| a.to_vec()).collect(),
                best: vec![None; 3],
            };
            out.push_str(&html_table(&t));
        }
    }
    if let Some(t) = incident_rows(r) {
        out.push_str("<h2>Incidents</h2>\n");
        out.push_str(&html_table(&t));
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(RECOVERY_NOTE));
    }
    let ex = exemplar_lines(r);
    if !ex.is_empty() {
        let _ = writeln!(
            out,
            "<h2>Exemplars</h2>\n<p class=\"note\">{}</p>",
            esc(EXEMPLAR_NOTE)
        );
        for (name, lines) in ex {
            let _ = writeln!(out, "<h3>{}</h3>\n<ul class=\"ex\">", esc(&name));
            for l in lines {
                let _ = writeln!(out, "<li>{}</li>", esc(&l));
            }
            out.push_str("</ul>\n");
        }
    }
    if !check.thresholds.is_empty() {
        out.push_str("<h2>Thresholds</h2>\n<ul>\n");
        for v in &check.thresholds {
            let _ = writeln!(
                out,
                "<li class=\"{}\">{} {}: {}</li>",
                if v.ok { "ok" } else { "fail" },
                if v.ok { "✓" } else { "✗" },
                esc(&v.strategy),
                esc(&v.text)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Charts</h2>\n");
    for c in charts {
        let _ = writeln!(
            out,
            "<figure id=\"{}\">\n<figcaption>{}</figcaption>\n{}\n</figure>",
            esc(&c.name),
            esc(&c.title),
            strip_xml_declaration(&c.svg)
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}
