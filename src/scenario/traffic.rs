//! Traffic as resolved from `[traffic]`: rate profile, bursts, task mix,
//! runaway loops and other tenants.

use crate::dist::LogNormal;
use crate::policy::Tier;
use crate::units::Nanos;

/// One task type of the mix.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// Name (routing refers to it).
    pub name: String,
    /// Relative share.
    pub weight: f64,
    /// Prompt tokens.
    pub input: LogNormal,
    /// Output tokens the model would write.
    pub output: LogNormal,
    /// `max_tokens` sent (caps the output).
    pub max_tokens: u32,
    /// Complexity tier.
    pub tier: Tier,
    /// Whether JSON is required.
    pub json: bool,
    /// User-facing deadline, relative to arrival.
    pub deadline: Nanos,
}

impl TaskSpec {
    /// The output length the model writes for a request of this task whose
    /// output draw is the standard normal `z` (at least 1, at most
    /// `max_tokens`). The simulator and the mock provider both use it.
    pub fn output_tokens(&self, z: f64) -> u32 {
        crate::units::round(self.output.at(z)).clamp(1.0, f64::from(self.max_tokens.max(1))) as u32
    }
}

/// A loop at a fixed rate.
#[derive(Clone, Debug)]
pub struct RunawaySpec {
    /// Requests per second.
    pub rate: f64,
    /// Task index.
    pub task: usize,
    /// Start.
    pub start: Nanos,
    /// End.
    pub end: Nanos,
}

/// Another tenant on a shared pool.
#[derive(Clone, Debug)]
pub struct TenantSpec {
    /// Name.
    pub name: String,
    /// Poisson rate.
    pub rate: f64,
    /// Task index.
    pub task: usize,
}

/// The whole traffic description.
#[derive(Clone, Debug)]
pub struct TrafficSpec {
    /// Piecewise-linear rate profile (time, requests per second), sorted by time.
    pub profile: Vec<(Nanos, f64)>,
    /// Bursts: (start, requests, spread).
    pub bursts: Vec<(Nanos, u32, Nanos)>,
    /// Task mix.
    pub tasks: Vec<TaskSpec>,
    /// Runaway loops.
    pub runaways: Vec<RunawaySpec>,
    /// Other tenants (each with its own strategy in [`super::Scenario::tenant_strategies`]).
    pub tenants: Vec<TenantSpec>,
}

impl TrafficSpec {
    /// The rate at time `t` (linear between profile points, constant after).
    pub fn rate_at(&self, t: Nanos) -> f64 {
        let p = &self.profile;
        match p.iter().position(|&(at, _)| at > t) {
            None => p.last().map_or(0.0, |&(_, r)| r),
            Some(0) => p[0].1,
            Some(i) => {
                let (t0, r0) = p[i - 1];
                let (t1, r1) = p[i];
                r0 + (r1 - r0) * (t - t0) as f64 / (t1 - t0) as f64
            }
        }
    }

    /// The highest rate anywhere in the profile.
    pub fn max_rate(&self) -> f64 {
        self.profile.iter().map(|&(_, r)| r).fold(0.0, f64::max)
    }

    /// The longest deadline of any task.
    pub fn longest_deadline(&self) -> Nanos {
        self.tasks.iter().map(|t| t.deadline).max().unwrap_or(0)
    }
}
