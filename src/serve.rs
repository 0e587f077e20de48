//! `stormglass serve`: the mock provider as a child process.
//!
//! `mock-provider` depends on this library, so this binary cannot link it;
//! it runs the `mock-provider` binary found beside its own executable.
//! When stormglass itself was started by `cargo run` (Cargo sets `CARGO`),
//! that binary is first built (or brought up to date) with the same
//! profile, so `cargo run --release -- serve x.toml` works from a fresh
//! clone.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{bail, Context as _};

/// The `mock-provider` binary beside this executable, built first when
/// running under Cargo.
pub fn mock_provider_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let mut dir = exe
        .parent()
        .context("this executable has no parent directory")?;
    // Test binaries live in target/<profile>/deps, binaries one level up.
    if dir.file_name().is_some_and(|d| d == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    let bin = dir.join(format!("mock-provider{}", std::env::consts::EXE_SUFFIX));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    if let Some(cargo) = std::env::var_os("CARGO").filter(|_| manifest.exists()) {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "mock-provider", "--manifest-path"])
            .arg(&manifest);
        if dir.file_name().is_some_and(|d| d == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .context("cannot run cargo to build mock-provider")?;
        if !status.success() {
            bail!("building mock-provider failed ({status})");
        }
    }
    if !bin.exists() {
        bail!(
            "the mock-provider binary is not beside {} (build it with `cargo build --release -p mock-provider`, or run stormglass with `cargo run`)",
            exe.display()
        );
    }
    Ok(bin)
}

/// Runs the mock provider for `scenario` in the foreground, passing `args`
/// on. On Unix this process becomes the server (`exec`); elsewhere it waits
/// for the child.
pub fn serve(scenario: &Path, args: &[OsString]) -> anyhow::Result<ExitCode> {
    // A bad scenario is reported by stormglass itself, before any build.
    crate::scenario::load(scenario)?;
    let bin = mock_provider_binary()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--scenario").arg(scenario).args(args);
    #[cfg(unix)]
    {
        // Become the server: signals (ctrl-c, a supervisor's SIGTERM or
        // SIGKILL) reach it directly, and no process is left behind.
        use std::os::unix::process::CommandExt as _;
        let err = cmd.exec();
        return Err(err).with_context(|| format!("cannot start {}", bin.display()));
    }
    #[allow(unreachable_code)]
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        // Ended by a signal (ctrl-c): a normal way to stop a server.
        None => ExitCode::SUCCESS,
    })
}

/// A mock provider running as a child process on a free loopback port;
/// killed when dropped.
#[derive(Debug)]
pub struct MockProvider {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl MockProvider {
    /// Starts the mock provider for `scenario` on a free loopback port,
    /// with its request log off, and waits until it listens.
    pub fn start(scenario: &Path, args: &[OsString]) -> anyhow::Result<Self> {
        let bin = mock_provider_binary()?;
        let mut child = Command::new(&bin)
            .arg("--scenario")
            .arg(scenario)
            .args(["--port", "0", "--log", "off"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("no stdout from mock-provider")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .context("cannot read mock-provider's first line")?;
        // Keep reading, so that its later lines do not meet a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let Some(url) = line.trim().strip_prefix("mock-provider listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("mock-provider did not start: {:?}", line.trim());
        };
        Ok(Self {
            url: url.to_string(),
            child,
        })
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
