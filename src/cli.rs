//! The command line: options parsed by clap, validated, then run. Kept in
//! the library so tests can call `Opts::parse_from([...])` and [`run`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::{report, scenario, sim};

/// stormglass: how do your LLM retry, routing, fallback, timeout and cost
/// policies behave when a provider misbehaves?
#[derive(Debug, Parser)]
#[command(name = "stormglass", version, about, long_about = None)]
pub struct Opts {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a scenario under virtual time and compare its strategies.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Output directory (default: reports/<scenario name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Run this many seeds (the scenario's seed and the next ones) and
        /// report each figure's mean and 95% interval, and paired
        /// differences between strategies; writes seeds.json and seeds.md.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        seeds: Option<u32>,
        /// Worker threads (default: all cores).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Skip the exemplars (attempt timelines of a few requests) and the
        /// recording of attempts they need.
        #[arg(long)]
        no_exemplars: bool,
        /// Chart files to write: svg, png or both (report.html inlines
        /// the SVG charts either way).
        #[arg(long, value_enum, value_name = "FORMAT", default_value_t)]
        charts: report::chart::ChartFormat,
        /// Print the report JSON to stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Check a scenario file without running it.
    Validate {
        /// The scenario file.
        scenario: PathBuf,
    },
    /// Run a scenario's strategies in real time against a provider over
    /// HTTP (our mock provider, or any compatible endpoint).
    Live {
        /// The scenario file.
        scenario: PathBuf,
        /// The provider or gateway: http://HOST:PORT or https://HOST[:PORT]
        /// (loopback unless --allow-remote).
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// Also trust the CA certificates in this PEM file for an https
        /// target (beside the platform's roots).
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// The most connections open to the target at once; an attempt
        /// beyond it waits for one (default 512).
        #[arg(long, value_name = "N")]
        max_connections: Option<usize>,
        /// Start the mock provider for the scenario on a free loopback port.
        #[arg(long)]
        serve: bool,
        /// Run this much of the scenario (default: to its end).
        #[arg(long, value_name = "DURATION", value_parser = cli_duration)]
        duration: Option<u64>,
        /// Start at this point of the scenario (its incidents included).
        #[arg(long, value_name = "DURATION", value_parser = cli_duration, default_value = "0s")]
        from: u64,
        /// Allow a target that is not on loopback (needs --max-cost).
        #[arg(long)]
        allow_remote: bool,
        /// Stop sending when the run has spent this many US dollars.
        #[arg(long, value_name = "USD")]
        max_cost: Option<f64>,
        /// Run only this strategy (repeatable; default: all, one after another).
        #[arg(long, value_name = "NAME")]
        strategy: Vec<String>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory (default: reports/<scenario name>-live/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the report JSON to stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Record each strategy's core trace (every input and action) in
        /// this directory, as <strategy>.trace.jsonl.
        #[arg(long, value_name = "DIR")]
        trace: Option<PathBuf>,
        /// Chart files to write: svg, png or both (report.html inlines
        /// the SVG charts either way).
        #[arg(long, value_enum, value_name = "FORMAT", default_value_t)]
        charts: report::chart::ChartFormat,
    },
    /// Serve a scenario's providers over HTTP (runs the mock-provider
    /// binary; binds 127.0.0.1:8080 unless told otherwise).
    Serve {
        /// The scenario file.
        scenario: PathBuf,
        /// Passed on to mock-provider: --port, --bind, --seed,
        /// --fail-first, --log, ... (see `mock-provider --help`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "MOCK_PROVIDER_ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// The CI gate: a report against its scenario's `[[expect]]` thresholds
    /// and a baseline; exits 1 if any check fails.
    Check {
        /// The report (`report.json`).
        report: PathBuf,
        /// A baseline written by `--update-baseline`.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Rewrite the baseline from this report (after checking the thresholds).
        #[arg(long, requires = "baseline")]
        update_baseline: bool,
        /// How much worse a changed figure may get before the baseline check
        /// fails, relative (0.05 = 5%; for success rates, of the failure share).
        #[arg(long, default_value_t = 0.05)]
        tolerance: f64,
    },
    /// Two reports side by side, per strategy.
    Diff {
        /// The first report (A).
        a: PathBuf,
        /// The second report (B).
        b: PathBuf,
    },
}

fn read_json(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Runs a parsed command line.
pub fn run(opts: Opts) -> anyhow::Result<ExitCode> {
    match opts.command {
        Command::Serve { scenario, args } => crate::serve::serve(&scenario, &args),
        Command::Live {
            scenario,
            target,
            serve,
            duration,
            from,
            allow_remote,
            max_cost,
            strategy,
            seed,
            out,
            json,
            trace,
            ca_cert,
            max_connections,
            charts,
        } => {
            let mut sc = scenario::load(&scenario)?;
            if let Some(seed) = seed {
                sc = sc.with_seed(seed);
            }
            let lopts = crate::live::LiveOptions {
                target,
                serve,
                duration,
                from,
                allow_remote,
                max_cost,
                strategies: strategy,
                progress: true,
                trace,
                ca_cert,
                max_connections,
            };
            let rep = crate::live::run(&sc, &lopts)?;
            let dir =
                out.unwrap_or_else(|| PathBuf::from("reports").join(format!("{}-live", sc.name)));
            let heading = format!(
                "{} live (seed {}, {} strategies)",
                sc.name,
                sc.seed,
                rep.strategies.len()
            );
            print_report(&rep, &dir, &heading, json, charts)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            report: path,
            baseline,
            update_baseline,
            tolerance,
        } => {
            if !(tolerance.is_finite() && tolerance >= 0.0) {
                anyhow::bail!("--tolerance must be zero or more (0.05 = 5%)");
            }
            let rep = read_json(&path)?;
            let base = match &baseline {
                Some(b) if !update_baseline => Some(read_json(b)?),
                _ => None,
            };
            let result = report::check::check(&rep, base.as_ref(), tolerance);
            print!("{}", result.render());
            if let (true, Some(b)) = (update_baseline, &baseline) {
                if let Some(dir) = b.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let mut text = serde_json::to_string_pretty(&report::check::baseline(&rep))?;
                text.push('\n');
                std::fs::write(b, text).with_context(|| format!("writing {}", b.display()))?;
                println!("baseline written: {}", b.display());
            }
            Ok(if result.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Diff { a, b } => {
            let (ra, rb) = (read_json(&a)?, read_json(&b)?);
            println!("A: {}\nB: {}\n", a.display(), b.display());
            print!("{}", report::check::diff(&ra, &rb));
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { scenario } => {
            let sc = scenario::load(&scenario)?;
            println!(
                "{}: ok ({} providers, {} models, {} incidents, {} tasks, {} strategies)",
                scenario.display(),
                sc.world.providers.len(),
                sc.world.models.len(),
                sc.world.incidents.len(),
                sc.traffic.tasks.len(),
                sc.strategies.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            out,
            seed,
            seeds,
            threads,
            no_exemplars,
            charts,
            json,
        } => {
            let mut sc = scenario::load(&scenario)?;
            if let Some(seed) = seed {
                sc = sc.with_seed(seed);
            }
            let threads = threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                usize::from,
            );
            let dir = out.unwrap_or_else(|| PathBuf::from("reports").join(&sc.name));
            if let Some(n) = seeds.filter(|&n| n > 1) {
                return run_seeds(&sc, n, threads, &dir, json);
            }
            let (rep, _) = sim::run_with(&sc, threads, !no_exemplars)?;
            let heading = format!(
                "{} (seed {}, {} of arrivals, {} strategies)",
                sc.name,
                sc.seed,
                crate::units::format_duration(sc.duration),
                rep.strategies.len()
            );
            print_report(&rep, &dir, &heading, json, charts)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes a report's files to `dir` and prints it (the JSON, or the
/// heading, the comparison table, the SLO lines and, for a live run, the
/// driver's schedule lag): `run` and `live` alike.
fn print_report(
    rep: &report::Report,
    dir: &std::path::Path,
    heading: &str,
    json: bool,
    charts: report::chart::ChartFormat,
) -> anyhow::Result<()> {
    let written = report::write_all_as(rep, dir, charts)
        .with_context(|| format!("writing {}", dir.display()))?;
    let mut stdout = std::io::stdout().lock();
    if json {
        stdout.write_all(report::to_json(rep).as_bytes())?;
        return Ok(());
    }
    writeln!(stdout, "{heading}\n")?;
    stdout.write_all(report::table(rep).as_bytes())?;
    stdout.write_all(report::layer_lines(rep).as_bytes())?;
    let slo = report::slo_lines(rep);
    if !slo.is_empty() {
        writeln!(stdout)?;
        stdout.write_all(slo.as_bytes())?;
    }
    if let Some(live) = &rep.live {
        writeln!(
            stdout,
            "\ndriver schedule lag (how late requests were handed to the core):"
        )?;
        for s in &live.strategies {
            writeln!(
                stdout,
                "  {:<24} p50 {:>7}  p99 {:>7}  max {:>7}{}",
                s.name,
                crate::units::format_latency(s.schedule_lag_p50_ns),
                crate::units::format_latency(s.schedule_lag_p99_ns),
                crate::units::format_latency(s.schedule_lag_max_ns),
                if s.stopped_by_cost_guard {
                    "  (stopped by --max-cost)"
                } else {
                    ""
                }
            )?;
            if s.connection_waits > 0 {
                writeln!(
                    stdout,
                    "  {:<24} {} attempts waited for one of {} connections (p99 {})",
                    "",
                    s.connection_waits,
                    live.max_connections,
                    crate::units::format_latency(s.connection_wait_p99_ns),
                )?;
            }
        }
    }
    if let Some(path) = written.first() {
        writeln!(
            stdout,
            "\nreport: {} (and report.md, report.html, {} chart files)",
            path.display(),
            written.len().saturating_sub(3)
        )?;
    }
    Ok(())
}

fn cli_duration(s: &str) -> Result<u64, String> {
    crate::units::parse_duration(s)
}

/// `run --seeds N`: every (seed, strategy) pair on all threads, then the
/// seeds' summary.
fn run_seeds(
    sc: &scenario::Scenario,
    n: u32,
    threads: usize,
    dir: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let scenarios: Vec<scenario::Scenario> = (0..u64::from(n))
        .map(|k| sc.with_seed(sc.seed.wrapping_add(k)))
        .collect();
    let reports: Vec<report::Report> = sim::run_seeds(&scenarios, threads)?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let summary = report::seeds::aggregate(&reports);
    let mut text = serde_json::to_string_pretty(&summary)?;
    text.push('\n');
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("seeds.json");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let table = report::seeds::table(&summary);
    std::fs::write(dir.join("seeds.md"), format!("```\n{table}```\n"))
        .with_context(|| format!("writing {}", dir.display()))?;
    let mut stdout = std::io::stdout().lock();
    if json {
        stdout.write_all(text.as_bytes())?;
    } else {
        stdout.write_all(table.as_bytes())?;
        writeln!(stdout, "\nreport: {} (and seeds.md)", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
