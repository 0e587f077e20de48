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
        /// Worker threads (default: all cores).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
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
        /// The provider or gateway: http://HOST:PORT (loopback unless
        /// --allow-remote).
        #[arg(long, value_name = "URL")]
        target: Option<String>,
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
            };
            let rep = crate::live::run(&sc, &lopts)?;
            let dir =
                out.unwrap_or_else(|| PathBuf::from("reports").join(format!("{}-live", sc.name)));
            let path =
                report::write(&rep, &dir).with_context(|| format!("writing {}", dir.display()))?;
            let mut stdout = std::io::stdout().lock();
            if json {
                stdout.write_all(report::to_json(&rep).as_bytes())?;
            } else {
                writeln!(
                    stdout,
                    "{} live (seed {}, {} strategies)\n",
                    sc.name,
                    sc.seed,
                    rep.strategies.len()
                )?;
                stdout.write_all(report::table(&rep).as_bytes())?;
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
                    }
                }
                writeln!(stdout, "\nreport: {}", path.display())?;
            }
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
            threads,
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
            let (rep, _) = sim::run(&sc, threads)?;
            let dir = out.unwrap_or_else(|| PathBuf::from("reports").join(&sc.name));
            let path =
                report::write(&rep, &dir).with_context(|| format!("writing {}", dir.display()))?;
            let mut stdout = std::io::stdout().lock();
            if json {
                stdout.write_all(report::to_json(&rep).as_bytes())?;
            } else {
                writeln!(
                    stdout,
                    "{} (seed {}, {} of arrivals, {} strategies)\n",
                    sc.name,
                    sc.seed,
                    crate::units::format_duration(sc.duration),
                    rep.strategies.len()
                )?;
                stdout.write_all(report::table(&rep).as_bytes())?;
                writeln!(stdout, "\nreport: {}", path.display())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn cli_duration(s: &str) -> Result<u64, String> {
    crate::units::parse_duration(s)
}
