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

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 33, "too short for a PNG");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[8..16], b"\0\0\0\x0dIHDR", "IHDR first");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

#[test]
fn png_charts_on_request_decode_and_are_byte_identical() {
    use stormglass::report::chart::ChartFormat;
    use stormglass::report::write_all_as;
    let mut sc = load("retry-storm.toml");
    sc.duration = 300 * stormglass::units::SECS;
    let r = run(&sc);
    let (a, b) = (temp_dir("png-a"), temp_dir("png-b"));
    let written = write_all_as(&r, &a, ChartFormat::Both).unwrap();
    write_all_as(&r, &b, ChartFormat::Both).unwrap();
    let charts = 5 + r.strategies.len();
    assert_eq!(written.len(), 1 + 2 * charts + 2, "{written:?}");
    let pngs: Vec<_> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(pngs.len(), charts);
    for p in &pngs {
        let bytes = std::fs::read(p).unwrap();
        let name = p.file_name().unwrap();
        assert_eq!(
            bytes,
            std::fs::read(b.join(name)).unwrap(),
            "{name:?} differs between two writes"
        );
        let size = png_size(&bytes);
        let expected = if name == "comparison.png" {
            (960, 560)
        } else {
            (960, 480)
        };
        assert_eq!(size, expected, "{name:?}");
        // It decodes whole, and something beside the white background was
        // drawn (axes, lines, text).
        let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), expected);
        let inked = buf[..info.buffer_size()]
            .chunks(3)
            .filter(|px| px.iter().any(|&c| c < 128))
            .count();
        assert!(inked > 2_000, "{name:?}: only {inked} dark pixels");
    }
    // PNG only: no SVG files, and report.md links the PNGs.
    let c = temp_dir("png-only");
    let written = write_all_as(&r, &c, ChartFormat::Png).unwrap();
    assert!(!written
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "svg")));
    let md = read(&c.join("report.md"));
    assert!(md.contains("(latency.png)") && !md.contains("(latency.svg)"));
    // The HTML still inlines every chart as SVG.
    assert_eq!(read(&c.join("report.html")).matches("<svg").count(), charts);
}

#[test]
fn the_charts_flag_is_parsed_on_run_and_live() {
    use clap::Parser as _;
    use stormglass::cli::{Command, Opts};
    use stormglass::report::chart::ChartFormat;
    let run = Opts::try_parse_from(["stormglass", "run", "x.toml", "--charts", "png"]).unwrap();
    assert!(matches!(
        run.command,
        Command::Run {
            charts: ChartFormat::Png,
            ..
        }
    ));
    let default = Opts::try_parse_from(["stormglass", "run", "x.toml"]).unwrap();
    assert!(matches!(
        default.command,
        Command::Run {
            charts: ChartFormat::Svg,
            ..
        }
    ));
    let live = Opts::try_parse_from([
        "stormglass",
        "live",
        "x.toml",
        "--serve",
        "--charts",
        "both",
    ])
    .unwrap();
    assert!(matches!(
        live.command,
        Command::Live {
            charts: ChartFormat::Both,
            ..
        }
    ));
    assert!(Opts::try_parse_from(["stormglass", "run", "x.toml", "--charts", "gif"]).is_err());
}
