//! stormglass: find out, before an incident does, how your LLM retry,
//! routing, fallback, timeout and cost policies behave when a provider
//! misbehaves.
//!
//! - [`scenario`]: the scenario file (TOML) and its checks.
//! - [`world`]: the provider model, shared with the mock provider.
//! - [`policy`]: the sans-IO resilience core, shared by every driver.
//! - [`sim`]: the discrete-event simulator under virtual time.
//! - [`report`]: histograms, figures, `report.json` and the console table.
//! - [`cli`]: the command line (`run`, `validate`).

pub mod calendar;
pub mod cli;
pub mod dist;
pub mod live;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod serve;
pub mod sim;
pub mod slab;
pub mod units;
pub mod wire;
pub mod world;
