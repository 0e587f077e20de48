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
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let scenario = match stormglass::scenario::load(&opts.scenario) {
        Ok(s) => Arc::new(s),
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
        let mut out = std::io::stdout();
        writeln!(out, "mock-provider listening on http://{local}")?;
        out.flush()?;
        mock_provider::serve_with_shutdown(listener, scenario, shutdown)
            .await
            .context("server failed")
    })
}
