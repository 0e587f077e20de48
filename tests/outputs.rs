//! What `run` writes besides report.json: the Markdown summary, the
//! single-file HTML report and the SVG charts.

mod support;

use std::path::PathBuf;

use stormglass::report::write_all;
use support::{load, run};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stormglass-outputs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_output_is_written_self_contained_and_deterministic() {
    let mut sc = load("retry-storm.toml");
    sc.duration = 400 * stormglass::units::SECS;
    let r = run(&sc);
    let (a, b) = (temp_dir("a"), temp_dir("b"));
    let written = write_all(&r, &a).unwrap();
    write_all(&r, &b).unwrap();
    // report.json, 5 charts + one timeline per strategy, report.md, report.html.
    assert_eq!(written.len(), 1 + 5 + r.strategies.len() + 2, "{written:?}");
    for p in &written {
        let name = p.file_name().unwrap();
        assert_eq!(
            read(p),
            read(&b.join(name)),
            "{name:?} differs between two writes"
        );
    }

    let html = read(&a.join("report.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    // Nothing to fetch: no scripts, no links, no external URLs; every chart inline.
    for bad in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(http",
        "src=\"//",
    ] {
        assert!(!html.contains(bad), "the HTML contains {bad}");
    }
    assert_eq!(html.matches("<figure").count(), 5 + r.strategies.len());
    assert_eq!(html.matches("<svg").count(), 5 + r.strategies.len());
    assert!(!html.contains("<?xml"), "an SVG kept its XML declaration");
    for s in &r.strategies {
        assert!(html.contains(&s.name));
    }
    assert!(html.contains("class=\"best\""));

    // Every chart has axis descriptions and a legend naming the strategies.
    let latency = read(&a.join("latency.svg"));
    assert!(latency.contains("percentile (log scale of 1/(1-q))"));
    assert!(latency.contains("latency (s)") || latency.contains("latency (ms)"));
    assert!(latency.contains("99.9%"), "the log axis labels its nines");
    let offered = read(&a.join("offered-load.svg"));
    assert!(offered.contains("virtual time (min)") && offered.contains("attempts per second"));
    assert!(offered.contains("quota openai/project"));
    assert!(offered.contains("incident window"));
    for s in &r.strategies {
        assert!(offered.contains(&s.name), "legend lacks {}", s.name);
    }
    let cost = read(&a.join("cost-over-time.svg"));
    assert!(cost.contains("cost (USD)"));
    assert!(read(&a.join("timeline-full-jitter.svg")).contains("failed requests/s"));
}

#[test]
fn the_markdown_marks_the_best_value_and_gives_the_slo_and_alerts() {
    let mut sc = load("retry-storm.toml");
    sc.duration = 400 * stormglass::units::SECS;
    let r = run(&sc);
    let dir = temp_dir("md");
    write_all(&r, &dir).unwrap();
    let md = read(&dir.join("report.md"));
    // The budget strategy sends the fewest attempts per request: its
    // amplification is the bold one.
    let row = md
        .lines()
        .find(|l| l.starts_with("| fixed-with-budget |"))
        .expect("a row per strategy");
    let amp = support::strategy(&r, "fixed-with-budget").amplification;
    assert!(row.contains(&format!("**{amp:.3}**")), "{row}");
    let fixed = md
        .lines()
        .find(|l| l.starts_with("| fixed-no-jitter |"))
        .unwrap();
    assert!(!fixed.contains(&format!(
        "**{:.3}**",
        support::strategy(&r, "fixed-no-jitter").amplification
    )));
    assert!(md.contains("## SLO") && md.contains("### Burn-rate alerts"));
    assert!(
        md.contains("| fixed-no-jitter | availability | 1h/5m at 14.4x: 4m"),
        "{md}"
    );
    assert!(md.contains("## Thresholds") && md.contains(" full-jitter: success > 0.75: "));
    assert!(md.contains("(latency.svg)"));
}
