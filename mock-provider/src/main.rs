//! The `mock-provider` binary: parse, load the scenario, bind, serve.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

/// An HTTP server that reproduces LLM provider faults from a stormglass scenario.
#[derive(Debug, Parser)]
#[command(name = "mock-provider", version)]
struct Opts {
    /// The scenario file.
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on. Anything but loopback needs --allow-remote.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Allow --bind to a non-loopback address (the server has no TLS and
    /// its keys are the scenario's names).
    #[arg(long)]
    allow_remote: bool,
    /// Run the scenario with this seed instead of its own.
    #[arg(long)]
    seed: Option<u64>,
    /// Streams send at most one chunk per this interval.
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = duration)]
    chunk_interval: std::time::Duration,
    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    body_limit: usize,
    /// Time a client has to send its request (408, or the connection closes, beyond).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    read_timeout: std::time::Duration,
    /// Log one JSON line per completion request to standard error.
    #[arg(long, value_name = "WHEN", default_value = "on", value_parser = ["on", "off"])]
    log: String,
    /// Fail the first N completion requests (then serve as the scenario says).
    #[arg(long, value_name = "N")]
    fail_first: Option<u64>,
    /// How --fail-first fails them: a status (500, 503, 429, ...) or a fault
    /// (hang, reset, broken, stall, slow, malformed, insufficient_quota).
    #[arg(long, value_name = "FAULT", default_value = "500", value_parser = fault)]
    fail_first_with: stormglass::world::Force,
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    stormglass::units::parse_duration(s).map(std::time::Duration::from_nanos)
}

fn fault(s: &str) -> Result<stormglass::world::Force, String> {
    mock_provider::parse_fault(s)
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    if !opts.bind.is_loopback() && !opts.allow_remote {
        eprintln!(
            "Error: --bind {} is not a loopback address; add --allow-remote to serve other hosts",
            opts.bind
        );
        return ExitCode::from(2);
    }
    let scenario = match stormglass::scenario::load(&opts.scenario) {
        Ok(s) => Arc::new(match opts.seed {
            Some(seed) => s.with_seed(seed),
            None => s,
        }),
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts, scenario) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Opts, scenario: Arc<stormglass::scenario::Scenario>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let addr = SocketAddr::new(opts.bind, opts.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let shutdown = mock_provider::shutdown_signal().context("cannot listen for ctrl-c")?;
        let local = listener.local_addr()?;
        let app = mock_provider::App::new(
            scenario,
            mock_provider::Options {
                chunk_interval: opts.chunk_interval,
                body_limit: opts.body_limit,
                read_timeout: opts.read_timeout,
                log: opts.log == "on",
                fail_first: opts.fail_first.map(|n| (n, opts.fail_first_with)),
            },
        );
        // The banner is best effort: a closed stdout (a supervisor that
        // read the first line and left) must not stop the server.
        let _ = banner(&app, local);
        mock_provider::serve_with_shutdown(listener, app, shutdown)
            .await
            .context("server failed")
    })
}

fn banner(app: &mock_provider::App, local: SocketAddr) -> std::io::Result<()> {
    let mut out = std::io::stdout();
    writeln!(out, "mock-provider listening on http://{local}")?;
    let sc = app.scenario();
    writeln!(
        out,
        "scenario {} (seed {}): OpenAI base_url http://{local}/v1, Anthropic base_url http://{local}",
        sc.name, sc.seed
    )?;
    for k in &sc.world.keys {
        let provider = &sc.world.providers[k.provider].name;
        let models: Vec<&str> = sc
            .world
            .models
            .iter()
            .filter(|m| m.provider == k.provider)
            .map(|m| m.name.as_str())
            .collect();
        writeln!(
            out,
            "  api key {:?} ({provider}): {}",
            k.name,
            models.join(", ")
        )?;
    }
    out.flush()
}
