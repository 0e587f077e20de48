//! The scenario file: its serde schema, includes, loading and the checks
//! that turn a wrong file into an error with file, line, column and a hint.
//!
//! A scenario describes a world (providers, models, quota pools, keys,
//! incidents), the traffic that meets it, and the strategies to compare.
//! [`load`] reads and checks it and resolves names into the index-based
//! configurations that the world model, the core and the simulator use.

pub mod error;
mod judge;
pub mod load;
mod preset;
mod resolve;
pub mod schema;
pub mod traffic;
pub mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::policy::StrategyConfig;
use crate::units::Nanos;
use crate::world::WorldConfig;

pub use error::ScenarioError;
pub use traffic::{TaskSpec, TrafficSpec};

/// A checked, resolved scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Report name.
    pub name: String,
    /// The main file.
    pub path: PathBuf,
    /// Run seed.
    pub seed: u64,
    /// How long arrivals go on.
    pub duration: Nanos,
    /// Arrivals before this are left out of the figures.
    pub warmup: Nanos,
    /// The provider model.
    pub world: Arc<WorldConfig>,
    /// Traffic.
    pub traffic: TrafficSpec,
    /// Strategies, in file order.
    pub strategies: Vec<Arc<StrategyConfig>>,
    /// One strategy per other tenant, in `traffic.tenants` order.
    pub tenant_strategies: Vec<Arc<StrategyConfig>>,
    /// Service level objectives (`[slo]`), if any.
    pub slo: Option<crate::report::slo::SloConfig>,
    /// Thresholds for `check` (`[[expect]]`).
    pub expect: Vec<crate::report::check::Expectation>,
    /// The merged scenario as JSON (every file's sections after includes),
    /// recorded in the report.
    pub resolved: serde_json::Value,
}

impl Scenario {
    /// A copy with another seed (for sweeps).
    #[must_use]
    pub fn with_seed(&self, seed: u64) -> Self {
        let mut s = self.clone();
        s.seed = seed;
        let mut w = (*self.world).clone();
        w.seed = seed;
        s.world = Arc::new(w);
        let reseed = |list: &[Arc<StrategyConfig>]| -> Vec<Arc<StrategyConfig>> {
            list.iter()
                .map(|c| {
                    let mut c = (**c).clone();
                    c.seed = c.seed ^ self.seed ^ seed;
                    Arc::new(c)
                })
                .collect()
        };
        // Tenants run cores too: their jitter follows the run seed as well.
        s.strategies = reseed(&self.strategies);
        s.tenant_strategies = reseed(&self.tenant_strategies);
        s
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
}

fn strip<T: serde::Serialize>(v: &[(usize, toml::Spanned<T>)]) -> Vec<serde_json::Value> {
    v.iter()
        .map(|(_, x)| serde_json::to_value(x.get_ref()).unwrap_or_default())
        .collect()
}

fn merged_json(m: &load::Merged) -> serde_json::Value {
    serde_json::json!({
        "run": m.run.as_ref().map(|(_, r)| serde_json::to_value(r).unwrap_or_default()),
        "prices": serde_json::to_value(&m.prices).unwrap_or_default(),
        "provider": strip(&m.providers),
        "incident": strip(&m.incidents),
        "traffic": m.traffic.as_ref().map(|(_, t)| serde_json::to_value(t).unwrap_or_default()),
        "strategy": strip(&m.strategies),
        "slo": m.slo.as_ref().map(|(_, s)| serde_json::to_value(s.get_ref()).unwrap_or_default()),
        "expect": strip(&m.expect),
    })
}

/// Reads, checks and resolves a scenario file and its includes.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let (sources, merged) = load::read(path)?;
    let json = merged_json(&merged);
    let mut s = resolve::resolve(&sources, merged, &stem(path))?;
    s.resolved = json;
    Ok(s)
}

/// Like [`load`], for a scenario given as text under the name `path`.
pub fn load_str(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let (sources, merged) = load::read_str(path, text)?;
    let json = merged_json(&merged);
    let mut s = resolve::resolve(&sources, merged, &stem(path))?;
    s.resolved = json;
    Ok(s)
}
