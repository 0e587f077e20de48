//! Charts drawn with plotters: latency percentile curves on a log
//! "1/(1-q)" axis (after HdrHistogram's plotter), throughput and outcome mix
//! over time with incident windows shaded, offered load against quota, cost
//! over time and by model, and a strategy comparison.
//!
//! Everything is drawn from a [`Report`], so the charts show exactly what
//! `report.json` says. Each chart is one function generic over plotters'
//! [`DrawingBackend`]: the SVG (always drawn, the HTML report inlines it)
//! and the PNG (on request) come from the same code. Text is laid out, and
//! drawn into bitmaps, with DejaVu Sans, bundled in `assets/fonts/` and
//! registered with plotters' `ab_glyph` font table, so no system font or
//! font library is needed and a PNG is the same bytes on every machine.

use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::json::{Report, StrategyReport};

/// Colour-blind-safe colours (Okabe and Ito), one per strategy in order.
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
];

const INCIDENT: RGBColor = RGBColor(230, 80, 80);
const FONT: &str = "sans-serif";
/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`).
static FONT_DATA: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// Room above the data for the legend.
const HEADROOM: f64 = 1.45;
const SIZE: (u32, u32) = (960, 480);

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Which image files `run` and `live` write for the charts. The HTML
/// report inlines the SVG whatever is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ChartFormat {
    /// `<chart>.svg` (the default).
    #[default]
    Svg,
    /// `<chart>.png`.
    Png,
    /// Both.
    Both,
}

impl ChartFormat {
    /// Whether SVG files are written.
    pub fn svg(self) -> bool {
        matches!(self, Self::Svg | Self::Both)
    }

    /// Whether PNG files are written.
    pub fn png(self) -> bool {
        matches!(self, Self::Png | Self::Both)
    }
}

/// A chart: its file stem, title, SVG text and, on request, PNG bytes.
pub struct Chart {
    /// File stem, e.g. `latency`.
    pub name: String,
    /// Title, for the HTML report.
    pub title: String,
    /// SVG document.
    pub svg: String,
    /// PNG file, when asked for.
    pub png: Option<Vec<u8>>,
}

type Res<T> = Result<T, String>;
type Area<DB> = DrawingArea<DB, Shift>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The charts a report has, each drawn by one generic function.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Comparison,
    Latency,
    Offered,
    CostOverTime,
    CostByModel,
    /// Strategy `i`'s throughput and outcomes.
    Timeline(usize),
}

impl Kind {
    fn size(self) -> (u32, u32) {
        match self {
            Self::Comparison => (960, 560),
            _ => SIZE,
        }
    }

    fn paint<DB: DrawingBackend>(self, root: &Area<DB>, r: &Report) -> Res<()> {
        match self {
            Self::Comparison => comparison(root, r),
            Self::Latency => latency(root, r),
            Self::Offered => offered(root, r),
            Self::CostOverTime => cost_over_time(root, r),
            Self::CostByModel => cost_by_model(root, r),
            Self::Timeline(i) => timeline(root, r, i),
        }
    }
}

/// Registers the bundled font with plotters, once per process.
fn register_font() -> Res<()> {
    static DONE: OnceLock<Res<()>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_DATA)
            .map_err(|_| "the bundled font (DejaVu Sans) could not be read".to_string())
    })
    .clone()
}

/// Every chart of a report, in the order the HTML report shows them; with
/// `png`, each also as a PNG file.
pub fn all(r: &Report, png: bool) -> Res<Vec<Chart>> {
    register_font()?;
    let mut kinds = vec![
        (
            "comparison".to_string(),
            "Strategies compared".to_string(),
            Kind::Comparison,
        ),
        (
            "latency".into(),
            "Latency percentiles (all requests)".into(),
            Kind::Latency,
        ),
        (
            "offered-load".into(),
            "Offered load against quota".into(),
            Kind::Offered,
        ),
        (
            "cost-over-time".into(),
            "Cost over time".into(),
            Kind::CostOverTime,
        ),
        (
            "cost-by-model".into(),
            "Cost by model".into(),
            Kind::CostByModel,
        ),
    ];
    for (i, s) in r.strategies.iter().enumerate() {
        kinds.push((
            format!("timeline-{}", slug(&s.name)),
            format!("Throughput and outcomes over time: {}", s.name),
            Kind::Timeline(i),
        ));
    }
    kinds
        .into_iter()
        .map(|(name, title, kind)| {
            Ok(Chart {
                name,
                title,
                svg: svg(kind, r)?,
                png: if png { Some(png_file(kind, r)?) } else { None },
            })
        })
        .collect()
}

/// A file-name-safe form of a strategy name.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn render<DB: DrawingBackend>(root: &Area<DB>, kind: Kind, r: &Report) -> Res<()> {
    root.fill(&WHITE).map_err(err)?;
    kind.paint(root, r)?;
    root.present().map_err(err)
}

fn svg(kind: Kind, r: &Report) -> Res<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, kind.size()).into_drawing_area();
        render(&root, kind, r)?;
    }
    Ok(buf)
}

/// Draws into an RGB buffer and encodes it as PNG. The encoder writes no
/// time or other varying chunk, so the same report gives the same bytes.
fn png_file(kind: Kind, r: &Report) -> Res<Vec<u8>> {
    let (w, h) = kind.size();
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        render(&root, kind, r)?;
    }
    encode_png(&rgb, w, h).map_err(err)
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Balanced);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Time of bucket `i`'s middle, in minutes of virtual time.
fn minutes(s: &StrategyReport, i: usize) -> f64 {
    (s.series.start_ns as f64 + (i as f64 + 0.5) * s.series.bucket_ns as f64) / 60e9
}

fn time_range(r: &Report) -> (f64, f64) {
    let end = r
        .strategies
        .iter()
        .map(|s| {
            (s.series.start_ns + s.series.bucket_ns * s.series.successes.len() as u64) as f64 / 60e9
        })
        .fold(0.0, f64::max);
    let start = r.scenario.warmup_ns as f64 / 60e9;
    (start, end.max(start + 1e-3))
}

fn per_second(s: &StrategyReport, v: u64) -> f64 {
    v as f64 * 1e9 / s.series.bucket_ns as f64
}

/// Most points a time line is drawn with: buckets are averaged in groups
/// so that a long run stays legible.
const MAX_POINTS: usize = 300;

/// A per-bucket count as a rate per second, averaged over groups of
/// buckets: (minutes at the group's middle, rate).
fn rate_line(s: &StrategyReport, count: impl Fn(usize) -> u64) -> Vec<(f64, f64)> {
    let n = s.series.successes.len();
    let k = n.div_ceil(MAX_POINTS).max(1);
    (0..n)
        .step_by(k)
        .map(|from| {
            let to = (from + k).min(n);
            let sum: u64 = (from..to).map(&count).sum();
            let mid = (minutes(s, from) + minutes(s, to - 1)) / 2.0;
            (mid, per_second(s, sum) / (to - from) as f64)
        })
        .collect()
}

/// Shades every incident's window over `0..ymax`.
fn shade_incidents<DB: DrawingBackend>(
    chart: &mut TimeChart<'_, DB>,
    r: &Report,
    ymax: f64,
) -> Res<()> {
    for (k, inc) in r.scenario.incidents.iter().enumerate() {
        let (a, b) = (inc.start_ns as f64 / 60e9, inc.end_ns as f64 / 60e9);
        let s = chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, 0.0), (b, ymax)],
                INCIDENT.mix(0.15).filled(),
            )))
            .map_err(err)?;
        if k == 0 {
            s.label("incident window").legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], INCIDENT.mix(0.3).filled())
            });
        }
    }
    Ok(())
}

type TimeChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart over virtual time (minutes), its axes described and its
/// incident windows shaded.
fn time_chart<'a, DB: DrawingBackend>(
    root: &'a Area<DB>,
    r: &Report,
    caption: &str,
    y_desc: &str,
    ytop: f64,
    y_fmt: &dyn Fn(&f64) -> String,
) -> Res<TimeChart<'a, DB>> {
    let (t0, t1) = time_range(r);
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(t0..t1, 0f64..ytop)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("virtual time (min)")
        .y_desc(y_desc)
        .y_label_formatter(y_fmt)
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 12))
        .draw()
        .map_err(err)?;
    shade_incidents(&mut chart, r, ytop)?;
    Ok(chart)
}

/// One line per strategy, in the strategy's colour, named in the legend.
fn strategy_lines<DB: DrawingBackend>(
    chart: &mut TimeChart<'_, DB>,
    r: &Report,
    lines: Vec<Vec<(f64, f64)>>,
) -> Res<()> {
    for (i, (s, pts)) in r.strategies.iter().zip(lines).enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Res<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .draw()
        .map_err(err)
}

fn latency<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Res<()> {
    let ymax = r
        .strategies
        .iter()
        .flat_map(|s| s.latency_curve.iter().map(|p| p.us))
        .max()
        .unwrap_or(1) as f64
        / 1000.0;
    // Milliseconds, or seconds once the curves pass ten seconds.
    let (div, unit) = if ymax > 10_000.0 {
        (1000.0, "s")
    } else {
        (1.0, "ms")
    };
    let ymax = ymax / div;
    let xmax = r
        .strategies
        .iter()
        .flat_map(|s| {
            s.latency_curve
                .iter()
                .filter(|p| p.q < 1.0)
                .map(|p| 1.0 / (1.0 - p.q))
        })
        .fold(10.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Latency by percentile, all requests (failures at the time they gave up)",
            (FONT, 18),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((1f64..xmax * 1.0001).log_scale(), 0f64..ymax * 1.05)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile (log scale of 1/(1-q))")
        .y_desc(format!("latency ({unit})"))
        .x_label_formatter(&|x| {
            let q = 100.0 * (1.0 - 1.0 / x);
            let digits = x.log10().round().max(2.0) as usize - 2;
            format!("{q:.digits$}%")
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 12))
        .draw()
        .map_err(err)?;
    for (i, s) in r.strategies.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = s
            .latency_curve
            .iter()
            .filter(|p| p.q < 1.0)
            .map(|p| (1.0 / (1.0 - p.q), p.us as f64 / 1000.0 / div))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn timeline<DB: DrawingBackend>(root: &Area<DB>, r: &Report, i: usize) -> Res<()> {
    let s = &r.strategies[i];
    let n = s.series.successes.len();
    let failed: Vec<u64> = (0..n)
        .map(|b| s.series.failures.values().map(|v| u64::from(v[b])).sum())
        .collect();
    let ok = rate_line(s, |b| u64::from(s.series.successes[b]));
    let top = rate_line(s, |b| u64::from(s.series.successes[b]) + failed[b]);
    let offered = rate_line(s, |b| u64::from(s.series.offered_attempts[b]));
    let ymax = top.iter().chain(&offered).map(|p| p.1).fold(1.0, f64::max);
    let mut chart = time_chart(
        root,
        r,
        &format!("{}: throughput and outcomes", s.name),
        "per second",
        ymax * HEADROOM,
        &|y| format!("{y:.0}"),
    )?;
    // Outcome mix: successes, failures stacked on top.
    let (green, red) = (RGBColor(0, 158, 115), RGBColor(213, 94, 0));
    chart
        .draw_series(AreaSeries::new(top, 0.0, red.mix(0.5)).border_style(red))
        .map_err(err)?
        .label("failed requests/s")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], red.mix(0.5).filled()));
    chart
        .draw_series(AreaSeries::new(ok, 0.0, green.mix(0.5)).border_style(green))
        .map_err(err)?
        .label("successful requests/s")
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 16, y + 5)], green.mix(0.5).filled())
        });
    let blue = color(0);
    chart
        .draw_series(LineSeries::new(offered, blue.stroke_width(2)))
        .map_err(err)?
        .label("attempts sent/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(2)));
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Quota pools' request limits in requests per second, from the resolved
/// scenario: (label, limit).
fn quotas(r: &Report) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let providers = r
        .scenario
        .resolved
        .get("provider")
        .and_then(serde_json::Value::as_array);
    for p in providers.into_iter().flatten() {
        let pname = p
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?");
        for pool in p
            .get("pool")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(rpm) = pool.get("rpm").and_then(serde_json::Value::as_f64) {
                let name = pool
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("?");
                out.push((format!("quota {pname}/{name}"), rpm / 60.0));
            }
        }
    }
    out
}

fn offered<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Res<()> {
    let quotas = quotas(r);
    let lines: Vec<Vec<(f64, f64)>> = r
        .strategies
        .iter()
        .map(|s| rate_line(s, |b| u64::from(s.series.offered_attempts[b])))
        .collect();
    let ymax = lines
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(quotas.iter().map(|q| q.1))
        .fold(1.0, f64::max);
    let mut chart = time_chart(
        root,
        r,
        "Attempts offered to the provider, against its request quota",
        "attempts per second",
        ymax * HEADROOM,
        &|y| format!("{y:.0}"),
    )?;
    let (t0, t1) = time_range(r);
    for (k, (label, limit)) in quotas.iter().enumerate() {
        let style = BLACK.mix(0.6).stroke_width(if k == 0 { 2 } else { 1 });
        chart
            .draw_series(DashedLineSeries::new(
                vec![(t0, *limit), (t1, *limit)],
                8,
                5,
                style,
            ))
            .map_err(err)?
            .label(format!("{label} (nominal)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    strategy_lines(&mut chart, r, lines)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn cost_over_time<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Res<()> {
    let cumulative: Vec<Vec<(f64, f64)>> = r
        .strategies
        .iter()
        .map(|s| {
            let mut acc = 0u64;
            s.series
                .cost_nano_usd
                .iter()
                .enumerate()
                .map(|(b, &c)| {
                    acc = acc.saturating_add(c);
                    (minutes(s, b), acc as f64 / 1e9)
                })
                .collect()
        })
        .collect();
    let ymax = cumulative
        .iter()
        .filter_map(|v| v.last().map(|p| p.1))
        .fold(1e-6, f64::max);
    let mut chart = time_chart(
        root,
        r,
        "Cost accumulated over time (requests, as they finish)",
        "cost (USD)",
        ymax * HEADROOM,
        &|y| format!("${y:.2}"),
    )?;
    strategy_lines(&mut chart, r, cumulative)?;
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// Horizontal bars. Grouped: one group per category, one bar per strategy
/// in each. Not grouped (`categories` empty): one bar per strategy, named.
fn grouped_bars<DB: DrawingBackend>(
    area: &Area<DB>,
    r: &Report,
    caption: &str,
    axis: &str,
    categories: &[String],
    value: impl Fn(&StrategyReport, usize) -> Option<f64>,
    show: impl Fn(f64) -> String,
) -> Res<()> {
    let grouped = !categories.is_empty();
    let names: Vec<String> = r.strategies.iter().map(|s| s.name.clone()).collect();
    let categories = if grouped { categories } else { &names[..] };
    let n = if grouped {
        r.strategies.len().max(1)
    } else {
        1
    };
    // Which bars strategy `i` draws: every category, or only its own row.
    let rows_of = |i: usize| -> Vec<usize> {
        if grouped {
            (0..categories.len()).collect()
        } else {
            vec![i]
        }
    };
    let vmax = r
        .strategies
        .iter()
        .enumerate()
        .flat_map(|(i, s)| rows_of(i).into_iter().filter_map(|c| value(s, c)))
        .fold(0.0, f64::max);
    let vmax = if vmax > 0.0 { vmax * 1.25 } else { 1.0 };
    let rows = categories.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(150)
        .build_cartesian_2d(0f64..vmax, 0f64..rows)
        .map_err(err)?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(axis)
        .y_labels(categories.len().max(1) * 2 + 1)
        .y_label_formatter(&|y| {
            let k = (rows - y - 0.5).round();
            if (rows - y - 0.5 - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < cats.len() {
                cats[k as usize].clone()
            } else {
                String::new()
            }
        })
        .axis_desc_style((FONT, 13))
        .label_style((FONT, 12))
        .x_labels(6)
        .x_label_formatter(&|x| show(*x))
        .draw()
        .map_err(err)?;
    let h = 0.8 / n as f64;
    for (i, s) in r.strategies.iter().enumerate() {
        let c = color(i);
        let slot = if grouped { i as f64 } else { 0.0 };
        let bars: Vec<_> = rows_of(i)
            .into_iter()
            .filter_map(|k| {
                let v = value(s, k)?;
                let top = rows - k as f64 - 0.1 - slot * h;
                Some(Rectangle::new([(0.0, top - h * 0.9), (v, top)], c.filled()))
            })
            .collect();
        let labels: Vec<_> = rows_of(i)
            .into_iter()
            .filter_map(|k| {
                let v = value(s, k)?;
                let mid = rows - k as f64 - 0.1 - slot * h - h * 0.45;
                Some(Text::new(format!(" {}", show(v)), (v, mid), label_style()))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.filled()));
        chart.draw_series(labels).map_err(err)?;
    }
    if grouped {
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    Ok(())
}

fn cost_by_model<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Res<()> {
    let mut models: Vec<String> = Vec::new();
    for s in &r.strategies {
        for m in &s.models {
            if !models.contains(&m.model) {
                models.push(m.model.clone());
            }
        }
    }
    grouped_bars(
        root,
        r,
        "Cost by model (USD, measured requests)",
        "cost (USD)",
        &models,
        |s, k| {
            s.models
                .iter()
                .find(|m| m.model == models[k])
                .map(|m| m.cost.nano_usd as f64 / 1e9)
        },
        |v| format!("${v:.2}"),
    )
}

fn comparison<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Res<()> {
    let panels = root.split_evenly((2, 2));
    let one: [String; 0] = [];
    let slo = r.scenario.slo.is_some();
    grouped_bars(
        &panels[0],
        r,
        "Success rate (higher is better)",
        "successful requests (%)",
        &one,
        |s, _| Some(s.success_rate * 100.0),
        |v| format!("{v:.1}%"),
    )?;
    if slo {
        grouped_bars(
            &panels[1],
            r,
            "Goodput: requests/s meeting the SLO (higher is better)",
            "requests per second",
            &one,
            |s, _| s.slo.as_ref().map(|x| x.goodput_rps),
            |v| format!("{v:.2}"),
        )?;
    } else {
        grouped_bars(
            &panels[1],
            r,
            "p99 latency, all requests (lower is better)",
            "seconds",
            &one,
            |s, _| Some(s.latency.all.p99_us as f64 / 1e6),
            |v| format!("{v:.2}s"),
        )?;
    }
    grouped_bars(
        &panels[2],
        r,
        "Attempts per request (lower is better)",
        "attempts / request",
        &one,
        |s, _| Some(s.amplification),
        |v| format!("{v:.2}"),
    )?;
    grouped_bars(
        &panels[3],
        r,
        "Cost per 1,000 successful requests (lower is better)",
        "USD",
        &one,
        |s, _| s.cost_per_1k_successes.map(|c| c.nano_usd as f64 / 1e9),
        |v| format!("${v:.3}"),
    )
}

fn label_style() -> TextStyle<'static> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    (FONT, 11)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center))
}
