//! What a run of one strategy counts, and the report section it becomes:
//! shared by the simulator and the live driver, so that both count the same
//! things the same way. The clients of a run are the strategy's replicas
//! followed by one client per other tenant (see [`clients_for`]).

use std::sync::Arc;

use crate::policy::scope::FleetState;
use crate::policy::{Action, Client, Outcome, RequestResult, StrategyConfig};
use crate::report::json::{KeyReport, LayerReport, TenantReport};
use crate::report::{AttemptEnd, Collector, StrategyReport};
use crate::scenario::Scenario;
use crate::units::{NanoUsd, Nanos, SECS};
use crate::world::draws::{rng, stream};

use super::traffic::Sender;

/// The clients of a run: the strategy's replicas, then one per other tenant
/// (with its own retry policy), each with its own keyed random stream.
pub fn clients_for(sc: &Scenario, strategy: &Arc<StrategyConfig>) -> (Vec<Client>, Vec<Sender>) {
    let mut clients = Vec::new();
    let mut senders = Vec::new();
    // Fleet-scoped policies: one state for all the replicas.
    let fleet = FleetState::new(strategy);
    for replica in 0..strategy.clients {
        let mut client = Client::new(
            Arc::clone(strategy),
            // The run's seed, not the strategy's: every strategy's replica
            // r meets the same jitter for the same (request, attempt), so
            // strategies differ by their policies, not their luck.
            rng(sc.seed, stream::POLICY, u64::from(replica), 0, 0),
        );
        if !fleet.is_empty() {
            client.join_fleet(&fleet, replica == 0);
        }
        clients.push(client);
        senders.push(Sender::Strategy);
    }
    for (i, t) in sc.tenant_strategies.iter().enumerate() {
        clients.push(Client::new(
            Arc::clone(t),
            rng(t.seed, stream::POLICY, 0, 0, 0),
        ));
        senders.push(Sender::Tenant(i));
    }
    (clients, senders)
}

/// The client that gets request `id` from `sender`: strategy requests are
/// spread over the replicas by id, a tenant's go to its own client.
pub fn client_for(sender: Sender, id: u64, replicas: u32) -> u32 {
    match sender {
        Sender::Strategy => ((id ^ (id >> 40)) % u64::from(replicas.max(1))) as u32,
        Sender::Tenant(t) => replicas + t as u32,
    }
}

/// How an answered attempt ended, for the per-model counts.
pub fn attempt_end(outcome: &Outcome) -> AttemptEnd {
    use crate::wire::ErrorType;
    match outcome {
        Outcome::Success { .. } => AttemptEnd::Answered,
        Outcome::HttpError { error, .. } => match error {
            ErrorType::RateLimit => AttemptEnd::RateLimited,
            // Out of credit is a billing error, not a rate limit (Anthropic
            // says it with a 400, OpenAI with a 429 of its own type).
            ErrorType::InsufficientQuota => AttemptEnd::Error,
            ErrorType::Overloaded => AttemptEnd::Overloaded,
            _ => AttemptEnd::Error,
        },
        Outcome::Reset { .. } | Outcome::BrokenStream { .. } => AttemptEnd::Broken,
        Outcome::Cancelled { .. } => AttemptEnd::Cancelled,
    }
}

/// A key's measured attempts.
#[derive(Default, Clone, Copy)]
struct KeyCounts {
    attempts: u64,
    answered: u64,
    rate_limited: u64,
    auth_errors: u64,
}

#[derive(Default, Clone, Copy)]
struct TenantCounts {
    requests: u64,
    successes: u64,
    attempts: u64,
}

/// The counts of one strategy's run.
pub struct Tally {
    /// The strategy's figures.
    pub collector: Collector,
    warmup: Nanos,
    tenants: Vec<TenantCounts>,
    keys: Vec<KeyCounts>,
}

impl Tally {
    /// Empty counts for a run of `sc`.
    pub fn new(sc: &Scenario) -> Self {
        let drain = sc.traffic.longest_deadline() + 10 * SECS;
        Self {
            collector: Collector::new(
                sc.world.models.len(),
                sc.traffic.longest_deadline() * 2,
                (sc.warmup, sc.duration),
                drain,
                sc.slo.clone(),
                &sc.world
                    .incidents
                    .iter()
                    .map(|i| (i.name.clone(), i.start, i.end))
                    .collect::<Vec<_>>(),
            ),
            warmup: sc.warmup,
            tenants: vec![TenantCounts::default(); sc.traffic.tenants.len()],
            keys: vec![KeyCounts::default(); sc.world.keys.len()],
        }
    }

    /// A request arrived from `sender` at `now`.
    pub fn on_arrival(&mut self, now: Nanos, sender: Sender) {
        if let Sender::Tenant(t) = sender {
            if now >= self.warmup {
                self.tenants[t].requests += 1;
            }
        }
    }

    /// An attempt was sent (`action` is an `Action::Send`).
    pub fn on_send(&mut self, now: Nanos, sender: Sender, action: &Action) {
        let Action::Send {
            model,
            key,
            measured,
            ..
        } = *action
        else {
            return;
        };
        if measured {
            self.collector.on_send(now, model);
            self.keys[usize::from(key)].attempts += 1;
        }
        if let Sender::Tenant(t) = sender {
            if now >= self.warmup {
                self.tenants[t].attempts += 1;
            }
        }
    }

    /// A measured attempt of `model` with `key` ended with `outcome` at `now`.
    pub fn on_outcome(&mut self, now: Nanos, model: u16, key: u16, outcome: &Outcome) {
        let end = attempt_end(outcome);
        self.collector.on_attempt_end(now, model, end);
        let k = &mut self.keys[usize::from(key)];
        match outcome {
            Outcome::HttpError { .. } if end == AttemptEnd::RateLimited => k.rate_limited += 1,
            Outcome::HttpError {
                status: 401 | 403, ..
            } => k.auth_errors += 1,
            Outcome::Success { .. } => k.answered += 1,
            _ => {}
        }
    }

    /// A request (`(id, arrival)`) of `sender` finished at `now`, having
    /// cost `cost`; true if it became an exemplar candidate.
    #[allow(clippy::too_many_arguments)]
    pub fn on_finish(
        &mut self,
        now: Nanos,
        sender: Sender,
        (request, arrived): (u64, Nanos),
        result: RequestResult,
        first_token: Option<Nanos>,
        cost: NanoUsd,
        measured: bool,
    ) -> bool {
        match sender {
            Sender::Strategy => {
                measured
                    && self
                        .collector
                        .on_finish(now, (request, arrived), result, first_token, cost)
            }
            Sender::Tenant(t) => {
                if result == RequestResult::Success && arrived >= self.warmup {
                    self.tenants[t].successes += 1;
                }
                false
            }
        }
    }

    /// The strategy's report section, with what its clients' cores counted.
    pub fn into_report(
        self,
        sc: &Scenario,
        strategy: &StrategyConfig,
        clients: &[Client],
        senders: &[Sender],
    ) -> StrategyReport {
        let mut ledger = crate::policy::CostLedger::new(sc.world.models.len());
        let mut counters = crate::report::collect::CoreCounters::default();
        let mut layer_retries = [0u64; crate::policy::config::MAX_LAYERS];
        let mut layer_pass_timeouts = [0u64; crate::policy::config::MAX_LAYERS];
        for (c, s) in clients.iter().zip(senders) {
            if *s == Sender::Strategy {
                ledger.merge(c.ledger());
                for (sum, n) in layer_retries.iter_mut().zip(c.layer_retries()) {
                    *sum += n;
                }
                for (sum, n) in layer_pass_timeouts.iter_mut().zip(c.layer_pass_timeouts()) {
                    *sum += n;
                }
                counters.retries_denied += c.retries_denied();
                counters.breaker_opens += c.breaker_opens();
                counters.throttled_locally += c.throttled();
                counters.hedges += c.hedges();
                counters.hedge_wins += c.hedge_wins();
                counters.cost_downgraded += c.downgraded();
                counters.paced += c.paced();
                counters.shed_locally += c.shed();
                counters.queued_locally += c.queued();
                let (disabled, rests) = c.key_events();
                counters.keys_disabled += disabled;
                counters.key_rests += rests;
                counters.validation.merge(&c.validation());
            }
        }
        let names: Vec<String> = sc.world.models.iter().map(|m| m.name.clone()).collect();
        let tenants = sc
            .traffic
            .tenants
            .iter()
            .zip(&self.tenants)
            .map(|(t, c)| TenantReport {
                name: t.name.clone(),
                requests: c.requests,
                successes: c.successes,
                attempts: c.attempts,
            })
            .collect();
        let keys = sc
            .world
            .keys
            .iter()
            .zip(&self.keys)
            .filter(|(_, c)| c.attempts > 0)
            .map(|(k, c)| KeyReport {
                key: k.name.clone(),
                pool: k.pool.map(|p| sc.world.pools[p].name.clone()),
                attempts: c.attempts,
                answered: c.answered,
                rate_limited: c.rate_limited,
                auth_errors: c.auth_errors,
            })
            .collect();
        let mut report = self.collector.into_report(
            &strategy.name,
            strategy.clients,
            &names,
            &ledger,
            counters,
            tenants,
        );
        report.keys = keys;
        // Each retry of a layer starts a fresh pass of every layer inside it.
        let mut passes = report.requests;
        report.layers = strategy
            .layers
            .iter()
            .zip(layer_retries)
            .zip(layer_pass_timeouts)
            .map(|((l, retries), pass_timeouts)| {
                let r = LayerReport {
                    name: l.name.clone(),
                    passes,
                    retries,
                    pass_timeouts,
                };
                passes += retries;
                r
            })
            .collect();
        report
    }
}
