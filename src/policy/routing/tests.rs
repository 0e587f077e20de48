use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::policy::breaker::BreakerConfig;
use crate::policy::retry::{Backoff, BudgetConfig, Classifier};
use crate::policy::{RetryConfig, Timeouts};
use crate::units::MILLIS;

fn cfg(routing: RoutingConfig) -> StrategyConfig {
    let model = |name: &str, price_in: u64, price_out: u64| ModelInfo {
        name: name.into(),
        price_in,
        price_out,
        keys: vec![0],
        provider: 0,
    };
    StrategyConfig {
        name: "r".into(),
        clients: 1,
        seed: 1,
        models: vec![
            model("big", 2_500_000, 10_000_000),
            model("small", 150_000, 600_000),
            model("mid", 800_000, 4_000_000),
        ],
        retry: RetryConfig {
            max_retries: 0,
            backoff: Backoff::None,
            honor_retry_after: true,
            max_retry_after: 0,
            honor_should_retry: true,
            too_long_retry_after: crate::policy::TooLongRetryAfter::GiveUp,
            max_elapsed: None,
            retry_after_replaces_backoff: false,
            retry_after_keeps_step: false,
        },
        timeouts: [Timeouts::default(); 3],
        min_attempt_time: 0,
        routing,
        route_by_task: vec![],
        default_model: 0,
        chains: [vec![], vec![], vec![]],
        classify: Classifier::default(),
        budget: BudgetConfig::Unlimited,
        breaker: BreakerConfig::None,
        breaker_per_key: false,
        throttle: None,
        hedge: None,
        cost_guard: None,
        rate_limit: None,
        concurrency: None,
        key_pool: None,
        validation: Default::default(),
        spend_budget: None,
        fleet: Default::default(),
        layers: Vec::new(),
    }
}

fn req(tier: Tier) -> Request {
    Request {
        id: 1,
        task: 0,
        tier,
        input_tokens: 1000,
        max_tokens: 500,
        json: false,
        deadline: 60 * SECS,
        measured: true,
    }
}

#[test]
fn weighted_routing_follows_its_weights() {
    let c = cfg(RoutingConfig::Weighted(vec![(0, 3.0), (1, 1.0)]));
    let r = Router::new(3);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 20_000;
    let big = (0..n)
        .filter(|_| r.route(&c, &req(Tier::Standard), &mut rng).0 == 0)
        .count();
    let share = big as f64 / n as f64;
    assert!((share - 0.75).abs() < 0.02, "{share}");
}

#[test]
fn priority_routing_puts_the_others_behind_the_first() {
    let c = cfg(RoutingConfig::Priority(vec![2, 0, 1]));
    let r = Router::new(3);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(
        r.route(&c, &req(Tier::Simple), &mut rng),
        (2, &[0u16, 1][..])
    );
}

#[test]
fn latency_routing_prefers_the_fastest_and_still_explores() {
    let c = cfg(RoutingConfig::Latency {
        models: vec![0, 1],
        alpha: 0.5,
        explore: 0.1,
    });
    let mut r = Router::new(3);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // Unmeasured models are tried first.
    r.on_sample(&c, 0, 900 * MILLIS);
    assert_eq!(
        r.route(&c, &req(Tier::Standard), &mut ChaCha8Rng::seed_from_u64(9))
            .0,
        1
    );
    r.on_sample(&c, 1, 300 * MILLIS);
    let n = 10_000;
    let fast = (0..n)
        .filter(|_| r.route(&c, &req(Tier::Standard), &mut rng).0 == 1)
        .count();
    let share = fast as f64 / n as f64;
    assert!((share - 0.9).abs() < 0.02, "{share}");
    // A failure makes the fast model look slow: the other takes over.
    r.on_sample(&c, 1, FAILURE_PENALTY);
    let slow = (0..n)
        .filter(|_| r.route(&c, &req(Tier::Standard), &mut rng).0 == 1)
        .count();
    assert!(slow < n / 5, "{slow}");
}

#[test]
fn cost_routing_takes_the_cheapest_model_that_meets_the_tier() {
    let simple_only = 1 << Tier::Simple.index();
    let all = tier_bits(&Tier::ALL);
    let c = cfg(RoutingConfig::Cost {
        models: vec![(0, all), (1, simple_only), (2, all)],
    });
    let r = Router::new(3);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(r.route(&c, &req(Tier::Simple), &mut rng).0, 1);
    assert_eq!(r.route(&c, &req(Tier::Complex), &mut rng).0, 2);
}

#[test]
fn least_in_flight_and_power_of_two_choices_avoid_the_busy_model() {
    let mut r = Router::new(3);
    for _ in 0..5 {
        r.on_send(0);
    }
    r.on_send(2);
    let c = cfg(RoutingConfig::LeastInFlight(vec![0, 1, 2]));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(r.route(&c, &req(Tier::Standard), &mut rng).0, 1);
    r.on_end(0);
    assert_eq!(r.in_flight(0), 4);
    // P2C with two candidates always compares both.
    let c = cfg(RoutingConfig::PowerOfTwo(vec![0, 2]));
    for _ in 0..50 {
        assert_eq!(r.route(&c, &req(Tier::Standard), &mut rng).0, 2);
    }
}
