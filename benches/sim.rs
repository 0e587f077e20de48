//! Simulator and core benches (criterion).
//!
//! - `sim/throughput`: one strategy of `benches/scenarios/throughput.toml`
//!   (over 50,000 requests in flight at the peak, about 8% of attempts
//!   faulty, every policy of the core on), single-threaded; criterion reports
//!   simulated attempts per second.
//! - `sim/throughput-all-policies`: the scenario's second strategy, the same
//!   stack with every policy of the core on (budget, breaker, throttle,
//!   hedging, rate and concurrency limits, cost guard, key pool).
//! - `core/request-success` and `core/retry-then-success`: the core's own cost
//!   per request, driven by the step harness's inputs without a world; the
//!   `-all-policies` variants use the second strategy.
//!
//! `cargo bench --bench sim`; figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_main, Criterion, Throughput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use stormglass::policy::{Action, Client, Outcome, Request, Tier};
use stormglass::units::SECS;
use stormglass::wire::{BodyKind, ErrorType, RateLimits};

fn throughput(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scenarios/throughput.toml");
    let sc = stormglass::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    for (name, i) in [("throughput", 0), ("throughput-all-policies", 1)] {
        let strategy = Arc::clone(&sc.strategies[i]);
        let (_, stats) = stormglass::sim::run_strategy_with(&sc, &strategy, false)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "{name}: {} requests, {} attempts, {} events, peak {} requests in flight",
            stats.requests, stats.attempts, stats.events, stats.peak_in_flight
        );
        g.throughput(Throughput::Elements(stats.attempts));
        g.bench_function(name, |b| {
            // The simulation itself; the exemplar replay is measured apart (BENCHMARKS.md).
            b.iter(|| {
                black_box(
                    stormglass::sim::run_strategy_with(&sc, &strategy, false).map(|r| r.1.attempts),
                )
            });
        });
    }
    g.finish();
}

fn core(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scenarios/throughput.toml");
    let sc = stormglass::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    core_with(&mut g, "", Arc::clone(&sc.strategies[0]), 1000, true);
    // Requests 2 ms apart stay under the strategy's client-side rate limit
    // (1,000 a second), so every request is sent at once. A retry per
    // request would open its breakers, so only the success path is timed.
    core_with(
        &mut g,
        "-all-policies",
        Arc::clone(&sc.strategies[1]),
        2_000_000,
        false,
    );
    g.finish();
}

fn core_with(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    suffix: &str,
    cfg: Arc<stormglass::policy::StrategyConfig>,
    spacing: u64,
    with_retry: bool,
) {
    let req = |id, now| Request {
        id,
        task: 1,
        tier: Tier::Standard,
        input_tokens: 1000,
        max_tokens: 500,
        json: false,
        deadline: now + 60 * SECS,
        measured: true,
    };
    let sent = |client: &mut Client| {
        let mut id = None;
        while let Some(a) = client.poll_action() {
            if let Action::Send { attempt, .. } = a {
                id = Some(attempt);
            }
        }
        id
    };
    let ok = Outcome::Success {
        input_tokens: 1000,
        output_tokens: 200,
        body: BodyKind::Valid,
    };
    g.bench_function(format!("request-success{suffix}"), |b| {
        let mut client = Client::new(Arc::clone(&cfg), ChaCha8Rng::seed_from_u64(1));
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let now = n * spacing;
            client.handle_request(now, req(n, now));
            let Some(id) = sent(&mut client) else {
                panic!("no attempt sent")
            };
            client.handle_first_token(now + 1, id);
            client.handle_outcome(now + 2, id, ok, RateLimits::default());
            black_box(sent(&mut client));
            black_box(client.poll_timeout())
        });
    });
    if !with_retry {
        return;
    }
    g.bench_function(format!("retry-then-success{suffix}"), |b| {
        let mut client = Client::new(Arc::clone(&cfg), ChaCha8Rng::seed_from_u64(1));
        let mut n = 0u64;
        let busy = Outcome::HttpError {
            status: 429,
            error: ErrorType::RateLimit,
            retry_after: None,
            should_retry: None,
        };
        b.iter(|| {
            n += 1;
            let now = n * 10 * SECS;
            client.handle_request(now, req(n, now));
            let Some(id) = sent(&mut client) else {
                panic!("no first attempt")
            };
            client.handle_outcome(now + 1, id, busy, RateLimits::default());
            assert!(
                sent(&mut client).is_none(),
                "the retry waits for its backoff"
            );
            let wake = client.poll_timeout().unwrap_or(now);
            client.handle_timeout(wake);
            let Some(id) = sent(&mut client) else {
                panic!("no retry")
            };
            client.handle_outcome(wake + 1, id, ok, RateLimits::default());
            black_box(sent(&mut client))
        });
    });
}

#[allow(missing_docs, unreachable_pub)]
mod group {
    use super::{core, throughput};
    criterion::criterion_group!(benches, throughput, core);
}
criterion_main!(group::benches);
