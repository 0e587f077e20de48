use super::*;
use crate::policy::harness::{finished, sent, Harness};
use crate::policy::{Backoff, Classifier, ModelInfo, RetryConfig, Tier, Timeouts};
use crate::units::{MILLIS, SECS};
use crate::wire::ErrorType;

fn cfg() -> StrategyConfig {
    let model = |name: &str, keys: Vec<u16>| ModelInfo {
        name: name.into(),
        price_in: 1_000_000,  // 1 USD per million
        price_out: 2_000_000, // 2 USD per million
        keys,
        provider: 0,
    };
    StrategyConfig {
        name: "t".into(),
        clients: 1,
        seed: 1,
        models: vec![model("a", vec![0, 1]), model("b", vec![2])],
        retry: RetryConfig {
            max_retries: 2,
            backoff: Backoff::Constant { base: SECS },
            honor_retry_after: true,
            max_retry_after: 60 * SECS,
            honor_should_retry: true,
            too_long_retry_after: crate::policy::TooLongRetryAfter::GiveUp,
            max_elapsed: None,
            retry_after_replaces_backoff: false,
            retry_after_keeps_step: false,
        },
        timeouts: [Timeouts::default(); 3],
        min_attempt_time: 0,
        routing: crate::policy::routing::RoutingConfig::Static,
        route_by_task: vec![0],
        default_model: 0,
        chains: [vec![1], vec![1], vec![1]],
        classify: Classifier::default(),
        budget: crate::policy::retry::BudgetConfig::Unlimited,
        breaker: crate::policy::breaker::BreakerConfig::None,
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

fn req(id: u64) -> Request {
    Request {
        id,
        task: 0,
        tier: Tier::Standard,
        input_tokens: 1000,
        max_tokens: 500,
        json: true,
        deadline: 30 * SECS,
        measured: true,
    }
}

fn http(status: u16, error: ErrorType, retry_after: Option<Nanos>) -> Outcome {
    Outcome::HttpError {
        status,
        error,
        retry_after,
        should_retry: None,
    }
}

fn ok(body: BodyKind) -> Outcome {
    Outcome::Success {
        input_tokens: 1000,
        output_tokens: 100,
        body,
    }
}

fn result_of(a: Option<Action>) -> RequestResult {
    match a {
        Some(Action::Finish { result, .. }) => result,
        other => panic!("expected a Finish, got {other:?}"),
    }
}

#[test]
fn a_success_finishes_with_its_cost() {
    let mut h = Harness::new(cfg(), 1);
    let (id, model, k) = sent(&h.request(req(1))).unwrap();
    assert_eq!((model, k), (0, 0));
    h.set_time(2 * SECS);
    let out = h.outcome(id, ok(BodyKind::Valid));
    match finished(&out) {
        Some(Action::Finish {
            result,
            cost,
            attempts,
            arrived,
            ..
        }) => {
            assert_eq!(result, RequestResult::Success);
            // 1000 x 1 + 100 x 2 USD per million = 0.0012 USD.
            assert_eq!(cost, NanoUsd(1_200_000));
            assert_eq!((attempts, arrived), (1, 0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.client.in_flight(), 0);
    assert_eq!(
        h.client.poll_timeout(),
        None,
        "no timer outlives its request"
    );
}

#[test]
fn a_429_waits_for_retry_after_when_longer_than_the_backoff() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    assert!(h
        .outcome(id, http(429, ErrorType::RateLimit, Some(3 * SECS)))
        .is_empty());
    assert_eq!(h.client.poll_timeout(), Some(3 * SECS));
    let out = h.next_timer().unwrap();
    let (_, model, k) = sent(&out).unwrap();
    assert_eq!((h.now, model, k), (3 * SECS, 0, 1));
}

#[test]
fn a_short_retry_after_does_not_shorten_the_backoff() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.outcome(id, http(429, ErrorType::RateLimit, Some(20 * MILLIS)));
    assert_eq!(h.client.poll_timeout(), Some(SECS));
}

#[test]
fn the_sdks_wait_a_short_retry_after_instead_of_the_backoff() {
    let mut c = cfg();
    c.retry.retry_after_replaces_backoff = true;
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.outcome(id, http(429, ErrorType::RateLimit, Some(20 * MILLIS)));
    assert_eq!(h.client.poll_timeout(), Some(20 * MILLIS));
    // A zero one leaves the backoff (1 s) to decide, as `0 < retry_after`.
    let (id, ..) = sent(&h.next_timer().unwrap()).unwrap();
    let at = h.now;
    h.outcome(id, http(429, ErrorType::RateLimit, Some(0)));
    assert_eq!(h.client.poll_timeout(), Some(at + SECS));
}

#[test]
fn a_retry_after_past_the_bound_moves_to_the_fallback() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.outcome(id, http(429, ErrorType::RateLimit, Some(120 * SECS)));
    assert_eq!(sent(&out).map(|s| s.1), Some(1));
}

#[test]
fn a_retry_after_past_the_bound_can_be_ignored_for_the_backoff() {
    // openai-python 1.x: a too-long retry-after is not waited for, but the
    // retry is still made, on the same model, after the SDK's own backoff.
    let mut c = cfg();
    c.retry.too_long_retry_after = crate::policy::TooLongRetryAfter::Backoff;
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    assert!(h
        .outcome(id, http(429, ErrorType::RateLimit, Some(120 * SECS)))
        .is_empty());
    assert_eq!(h.client.poll_timeout(), Some(SECS));
    let out = h.next_timer().unwrap();
    assert_eq!(sent(&out).map(|s| s.1), Some(0));
}

#[test]
fn a_409_fails_by_default_and_retries_when_the_table_says_so() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.outcome(id, http(409, ErrorType::InvalidRequest, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::ClientError)
    );
    let mut c = cfg();
    c.classify.set(FailureClass::Conflict, Disposition::Retry);
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    assert!(h
        .outcome(id, http(409, ErrorType::InvalidRequest, None))
        .is_empty());
    let out = h.next_timer().unwrap();
    assert_eq!(sent(&out).map(|s| s.1), Some(0));
}

#[test]
fn retries_are_spent_then_the_chain_is_followed_then_the_request_fails() {
    let mut h = Harness::new(cfg(), 1);
    let (mut id, ..) = sent(&h.request(req(1))).unwrap();
    let mut models = Vec::new();
    loop {
        let out = h.outcome(id, http(503, ErrorType::Overloaded, None));
        let out = if out.is_empty() {
            h.next_timer().unwrap()
        } else {
            out
        };
        if let Some(f) = finished(&out) {
            assert_eq!(
                result_of(Some(f)),
                RequestResult::Failed(FailReason::Overloaded)
            );
            break;
        }
        let (next, model, k) = sent(&out).unwrap();
        models.push((model, k));
        id = next;
    }
    // Two retries on a, then b with its own two retries.
    assert_eq!(models, [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
}

#[test]
fn a_500_falls_back_at_once() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.outcome(id, http(500, ErrorType::Server, None));
    let (_, model, k) = sent(&out).unwrap();
    assert_eq!((h.now, model, k), (0, 1, 0));
}

#[test]
fn client_errors_and_exhausted_quota_are_final() {
    for (status, error, reason) in [
        (400, ErrorType::InvalidRequest, FailReason::ClientError),
        (401, ErrorType::Authentication, FailReason::ClientError),
        (403, ErrorType::Authentication, FailReason::ClientError),
        (
            429,
            ErrorType::InsufficientQuota,
            FailReason::QuotaExhausted,
        ),
    ] {
        let mut h = Harness::new(cfg(), 1);
        let (id, ..) = sent(&h.request(req(1))).unwrap();
        let out = h.outcome(id, http(status, error, None));
        assert_eq!(
            result_of(finished(&out)),
            RequestResult::Failed(reason),
            "{status}"
        );
    }
}

#[test]
fn should_retry_header_overrides_the_class_when_honoured() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let no = Outcome::HttpError {
        status: 503,
        error: ErrorType::Overloaded,
        retry_after: None,
        should_retry: Some(false),
    };
    assert_eq!(
        sent(&h.outcome(id, no)).map(|s| s.1),
        Some(1),
        "no retry: straight to the fallback"
    );

    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let yes = Outcome::HttpError {
        status: 400,
        error: ErrorType::InvalidRequest,
        retry_after: None,
        should_retry: Some(true),
    };
    assert!(
        h.outcome(id, yes).is_empty(),
        "a 400 with x-should-retry: true waits for a retry"
    );
    assert_eq!(h.client.poll_timeout(), Some(SECS));

    let mut c = cfg();
    c.retry.honor_should_retry = false;
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    assert!(
        finished(&h.outcome(id, yes)).is_some(),
        "ignored when not honoured"
    );
}

#[test]
fn json_bodies_are_validated() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    assert_eq!(
        result_of(finished(&h.outcome(id, ok(BodyKind::Fenced)))),
        RequestResult::Success
    );
    for bad in [
        BodyKind::Truncated,
        BodyKind::MissingFields,
        BodyKind::PlainText,
    ] {
        let mut h = Harness::new(cfg(), 1);
        let (id, ..) = sent(&h.request(req(1))).unwrap();
        let out = h.outcome(id, ok(bad));
        assert_eq!(sent(&out).map(|s| s.1), Some(1), "{bad:?} falls back");
        // The bad answer was still billed.
        assert_eq!(h.client.ledger().all[0].output_tokens, 100);
    }
    let mut h = Harness::new(cfg(), 1);
    let mut r = req(1);
    r.json = false;
    let (id, ..) = sent(&h.request(r)).unwrap();
    assert_eq!(
        result_of(finished(&h.outcome(id, ok(BodyKind::PlainText)))),
        RequestResult::Success
    );
}

#[test]
fn a_first_token_timeout_cancels_and_retries_and_the_cancel_is_billed() {
    let mut c = cfg();
    c.timeouts[Tier::Standard.index()].first_token = Some(5 * SECS);
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 5 * SECS);
    assert_eq!(
        out,
        [Action::Cancel {
            attempt: id,
            reason: CancelReason::FirstTokenTimeout
        }]
    );
    // The driver answers the cancel: the prompt had been processed.
    h.outcome(
        id,
        Outcome::Cancelled {
            input_tokens: 1000,
            output_tokens: 0,
        },
    );
    assert_eq!(h.client.ledger().all[0].input_tokens, 1000);
    // Backoff, then a retry on the same model.
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 6 * SECS);
    assert_eq!(sent(&out).map(|s| (s.1, s.2)), Some((0, 1)));
}

#[test]
fn a_first_token_in_time_disarms_its_timeout() {
    let mut c = cfg();
    c.timeouts[Tier::Standard.index()].first_token = Some(5 * SECS);
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(SECS);
    h.first_token(id);
    // Only the request deadline is left.
    assert_eq!(h.client.poll_timeout(), Some(30 * SECS));
    h.set_time(9 * SECS);
    let out = h.outcome(id, ok(BodyKind::Valid));
    match finished(&out) {
        Some(Action::Finish { first_token, .. }) => assert_eq!(first_token, Some(SECS)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stalled_stream_hits_the_between_chunks_timeout() {
    let mut c = cfg();
    c.timeouts[Tier::Standard.index()].between_chunks = Some(2 * SECS);
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(SECS);
    h.first_token(id);
    h.client.handle_chunk(SECS, id);
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 3 * SECS);
    assert_eq!(
        out,
        [Action::Cancel {
            attempt: id,
            reason: CancelReason::IdleTimeout
        }]
    );
}

#[test]
fn the_deadline_ends_the_request_whatever_it_is_doing() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 30 * SECS);
    assert_eq!(
        out[0],
        Action::Cancel {
            attempt: id,
            reason: CancelReason::Deadline
        }
    );
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Deadline)
    );
    // A late answer to the cancelled attempt is billed but changes nothing.
    h.outcome(
        id,
        Outcome::Cancelled {
            input_tokens: 1000,
            output_tokens: 40,
        },
    );
    assert_eq!(h.client.ledger().all[0].output_tokens, 40);
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn a_retry_that_could_not_start_before_the_deadline_is_not_made() {
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(29_500 * MILLIS);
    let out = h.outcome(id, http(503, ErrorType::Overloaded, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Overloaded)
    );
}

#[test]
fn no_retry_ends_past_the_max_elapsed_time() {
    // Backoff 1 s, at most 10 s after arrival: a failure at 8.5 s is
    // retried at 9.5 s, one at 9.5 s would wait until 10.5 s and is not.
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.retry.max_retries = 10;
    c.retry.max_elapsed = Some(10 * SECS);
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(8_500 * MILLIS);
    assert!(h
        .outcome(id, http(503, ErrorType::Overloaded, None))
        .is_empty());
    let out = h.next_timer().unwrap();
    let (id, _, k) = sent(&out).unwrap();
    assert_eq!((h.now, k), (9_500 * MILLIS, 1));
    let out = h.outcome(id, http(503, ErrorType::Overloaded, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Overloaded)
    );
}

#[test]
fn keys_rotate_round_robin() {
    let mut h = Harness::new(cfg(), 1);
    let keys: Vec<u16> = (0..4)
        .map(|i| match h.request(req(i))[0] {
            Action::Send { key, .. } => key,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys, [0, 1, 0, 1]);
}

#[test]
fn the_same_inputs_give_the_same_actions() {
    let run = || {
        let mut c = cfg();
        c.retry.backoff = Backoff::FullJitter {
            base: SECS,
            cap: 8 * SECS,
        };
        let mut h = Harness::new(c, 7);
        for i in 0..20 {
            let (id, ..) = sent(&h.request(req(i))).unwrap();
            h.outcome(id, http(429, ErrorType::RateLimit, None));
        }
        while h.next_timer().is_some() {}
        h.log
    };
    assert_eq!(run(), run());
}

#[test]
fn a_retry_that_does_not_fit_before_the_deadline_falls_back_instead() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(20 * SECS);
    // Retry-after 15 s is within the bound but past the deadline (30 s).
    let out = h.outcome(id, http(429, ErrorType::RateLimit, Some(15 * SECS)));
    assert_eq!(sent(&out).map(|s| (s.1, s.2)), Some((1, 0)));
}

#[test]
fn nothing_is_sent_once_the_deadline_has_come() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(30 * SECS);
    let out = h.outcome(id, http(500, ErrorType::Server, None));
    assert!(sent(&out).is_none(), "{out:?}");
    assert!(matches!(
        result_of(finished(&out)),
        RequestResult::Failed(_)
    ));
}

#[test]
fn should_retry_true_retries_even_what_the_table_would_send_down_the_chain() {
    let mut h = Harness::new(cfg(), 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    let yes = Outcome::HttpError {
        status: 500,
        error: ErrorType::Server,
        retry_after: None,
        should_retry: Some(true),
    };
    assert!(
        h.outcome(id, yes).is_empty(),
        "waits for a retry on the same model"
    );
    let out = h.next_timer().unwrap();
    assert_eq!(sent(&out).map(|s| (s.1, s.2)), Some((0, 1)));
}

#[test]
fn routing_by_task_and_timeouts_and_chains_by_tier() {
    let mut c = cfg();
    c.route_by_task = vec![0, 1];
    c.chains = [vec![], vec![1], vec![0]];
    c.timeouts[Tier::Complex.index()].first_token = Some(3 * SECS);
    c.timeouts[Tier::Simple.index()].total = Some(2 * SECS);
    let mut h = Harness::new(c, 1);

    // Task 1 goes to model 1; its complex tier falls back to model 0.
    let mut r = req(1);
    r.task = 1;
    r.tier = Tier::Complex;
    let (id, model, _) = sent(&h.request(r)).unwrap();
    assert_eq!(model, 1);
    // The complex tier's first-token timeout fires at 3 s.
    let out = h.next_timer().unwrap();
    assert_eq!(
        (h.now, out[0]),
        (
            3 * SECS,
            Action::Cancel {
                attempt: id,
                reason: CancelReason::FirstTokenTimeout
            }
        )
    );
    h.outcome(
        id,
        Outcome::Cancelled {
            input_tokens: 0,
            output_tokens: 0,
        },
    );

    // A simple task on model 0: the attempt's own deadline is 2 s after sending.
    let mut r = req(2);
    r.tier = Tier::Simple;
    let out = h.request(r);
    match out[0] {
        Action::Send {
            model, deadline, ..
        } => assert_eq!((model, deadline), (0, h.now + 2 * SECS)),
        other => panic!("{other:?}"),
    }
    // And it has no fallback: a 500 ends it.
    let (id, ..) = sent(&out).unwrap();
    let out = h.outcome(id, http(500, ErrorType::Server, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::ServerError)
    );
}

#[test]
fn a_drained_token_bucket_stops_retries_and_a_success_restores_them() {
    use crate::policy::retry::BudgetConfig;
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.budget = BudgetConfig::TokenBucket {
        max_tokens: 4.0,
        token_ratio: 2.0,
    };
    let mut h = Harness::new(c, 1);
    // Two failures take the bucket from 4 to 2: not above half, no retry.
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let (b, ..) = sent(&h.request(req(2))).unwrap();
    assert!(
        h.outcome(a, http(503, ErrorType::Overloaded, None))
            .is_empty(),
        "first failure: retried"
    );
    let out = h.outcome(b, http(503, ErrorType::Overloaded, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Overloaded)
    );
    assert_eq!(h.client.retries_denied(), 1);
    // A success gives back two tokens (2 -> 4); d's failure spends one (3),
    // still above half: retried.
    let (c3, ..) = sent(&h.request(req(3))).unwrap();
    h.outcome(c3, ok(BodyKind::Valid));
    let (d, ..) = sent(&h.request(req(4))).unwrap();
    assert!(
        h.outcome(d, http(503, ErrorType::Overloaded, None))
            .is_empty(),
        "retried again"
    );
}

#[test]
fn a_concurrent_budget_frees_its_place_when_the_retry_ends() {
    use crate::policy::retry::BudgetConfig;
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.budget = BudgetConfig::Concurrent {
        percent: 0.0,
        min_concurrent: 1,
    };
    let mut h = Harness::new(c, 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let (b, ..) = sent(&h.request(req(2))).unwrap();
    // One retry may be in flight: a's is granted, b's is refused.
    assert!(h
        .outcome(a, http(503, ErrorType::Overloaded, None))
        .is_empty());
    let out = h.outcome(b, http(503, ErrorType::Overloaded, None));
    assert!(finished(&out).is_some());
    // a's retry goes and succeeds: its place is free again.
    let (a2, ..) = sent(&h.next_timer().unwrap()).unwrap();
    h.outcome(a2, ok(BodyKind::Valid));
    let (c3, ..) = sent(&h.request(req(3))).unwrap();
    assert!(h
        .outcome(c3, http(503, ErrorType::Overloaded, None))
        .is_empty());
    assert_eq!(h.client.retries_denied(), 1);
}

#[test]
fn an_open_breaker_sends_requests_straight_down_the_chain() {
    use crate::policy::breaker::BreakerConfig;
    let mut c = cfg();
    c.breaker = BreakerConfig::Cooldown {
        allowed_fails: 1,
        cooldown: 10 * SECS,
    };
    c.classify
        .set(FailureClass::Overloaded, Disposition::Fallback);
    let mut h = Harness::new(c, 1);
    // Two 503s from model 0 (each request falls back to model 1): the
    // second one cools model 0 down.
    for i in 0..2 {
        let (id, model, _) = sent(&h.request(req(i))).unwrap();
        assert_eq!(model, 0);
        let out = h.outcome(id, http(503, ErrorType::Overloaded, None));
        assert_eq!(sent(&out).map(|s| s.1), Some(1));
    }
    assert_eq!(h.client.breaker_opens(), 1);
    // The next request does not try model 0 at all.
    let (_, model, _) = sent(&h.request(req(9))).unwrap();
    assert_eq!(model, 1);
    // After the cooldown, model 0 is tried again.
    h.set_time(11 * SECS);
    let mut r = req(10);
    r.deadline = 60 * SECS;
    assert_eq!(sent(&h.request(r)).map(|s| s.1), Some(0));
}

#[test]
fn when_every_model_is_open_the_request_fails_at_once() {
    use crate::policy::breaker::BreakerConfig;
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.breaker = BreakerConfig::Cooldown {
        allowed_fails: 0,
        cooldown: 10 * SECS,
    };
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    // The failure opens the breaker; a retry would find it still open, so
    // none is waited for: no model is left, the request fails now.
    let out = h.outcome(id, http(503, ErrorType::Overloaded, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Overloaded)
    );
    let out = h.request(req(2));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::NoModelAvailable)
    );
}

#[test]
fn the_adaptive_throttle_sheds_attempts_while_the_backend_rejects() {
    use crate::policy::throttle::ThrottleConfig;
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.retry.max_retries = 0;
    c.throttle = Some(ThrottleConfig {
        k: 2.0,
        window: 120 * SECS,
        min_requests: 0,
    });
    let mut h = Harness::new(c, 3);
    let mut throttled = 0;
    for i in 0..200 {
        let out = h.request(req(i));
        match sent(&out) {
            Some((id, ..)) => {
                h.outcome(id, http(429, ErrorType::RateLimit, None));
            }
            None => {
                assert_eq!(
                    result_of(finished(&out)),
                    RequestResult::Failed(FailReason::Throttled)
                );
                throttled += 1;
            }
        }
    }
    // Nothing is accepted: the reject probability climbs towards 1.
    assert!(throttled > 150, "{throttled}");
    assert_eq!(h.client.throttled(), throttled);
}

#[test]
fn a_probe_answered_with_a_client_error_settles_the_breaker() {
    use crate::policy::breaker::BreakerConfig;
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.retry.max_retries = 0;
    c.breaker = BreakerConfig::Ratio {
        failure_ratio: 0.5,
        min_throughput: 2,
        window: 10 * SECS,
        break_for: 5 * SECS,
        probes: 1,
    };
    let mut h = Harness::new(c, 1);
    for i in 0..2 {
        let (id, ..) = sent(&h.request(req(i))).unwrap();
        h.outcome(id, http(503, ErrorType::Overloaded, None));
    }
    assert_eq!(h.client.breaker_opens(), 1);
    // After the break, the probe gets a 400: the model is fine, the request was not.
    h.set_time(6 * SECS);
    let mut r = req(10);
    r.deadline = 60 * SECS;
    let (id, ..) = sent(&h.request(r)).unwrap();
    h.outcome(id, http(400, ErrorType::InvalidRequest, None));
    // Closed again: later requests reach the model.
    h.set_time(100 * SECS);
    let mut r = req(11);
    r.deadline = 200 * SECS;
    assert!(
        sent(&h.request(r)).is_some(),
        "the model must not stay blocked"
    );
}

#[test]
fn a_retry_that_cannot_be_made_does_not_spend_the_budget() {
    use crate::policy::retry::BudgetConfig;
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.budget = BudgetConfig::Ratio {
        percent: 0.0,
        min_per_s: 0.1,
        window: 10 * SECS,
    };
    let mut h = Harness::new(c, 1);
    // A retry-after beyond the bound: no retry, and the single retry the
    // budget holds (0.1/s over 10 s) is not spent on it.
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    h.outcome(id, http(429, ErrorType::RateLimit, Some(120 * SECS)));
    let (id, ..) = sent(&h.request(req(2))).unwrap();
    assert!(
        h.outcome(id, http(503, ErrorType::Overloaded, None))
            .is_empty(),
        "retried"
    );
    assert_eq!(h.client.retries_denied(), 0);
}

#[test]
fn no_attempt_starts_with_less_than_min_attempt_time_left() {
    let mut c = cfg();
    c.min_attempt_time = 5 * SECS;
    let mut h = Harness::new(c, 1);
    let (id, ..) = sent(&h.request(req(1))).unwrap();
    // 4 s left when the 500 comes: the fallback would not have 5 s.
    h.set_time(26 * SECS);
    let out = h.outcome(id, http(500, ErrorType::Server, None));
    assert!(sent(&out).is_none(), "{out:?}");
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::ServerError)
    );
    // A retry whose backoff ends within 5 s of the deadline is not waited for either.
    let mut h = Harness::new(
        {
            let mut c = cfg();
            c.min_attempt_time = 5 * SECS;
            c.chains = [vec![], vec![], vec![]];
            c
        },
        1,
    );
    let (id, ..) = sent(&h.request(req(2))).unwrap();
    h.set_time(24_500 * MILLIS);
    let out = h.outcome(id, http(503, ErrorType::Overloaded, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Overloaded)
    );
}

fn hedged(
    delay: crate::policy::hedge::HedgeDelay,
    to: crate::policy::hedge::HedgeTarget,
) -> StrategyConfig {
    StrategyConfig {
        hedge: Some(crate::policy::hedge::HedgeConfig { delay, target: to }),
        ..cfg()
    }
}

fn sends(actions: &[Action]) -> Vec<(AttemptId, u16, u32, bool)> {
    actions
        .iter()
        .filter_map(|a| match *a {
            Action::Send {
                attempt,
                model,
                try_on_model,
                hedge,
                ..
            } => Some((attempt, model, try_on_model, hedge)),
            _ => None,
        })
        .collect()
}

fn cancels(actions: &[Action]) -> Vec<(AttemptId, CancelReason)> {
    actions
        .iter()
        .filter_map(|a| match *a {
            Action::Cancel { attempt, reason } => Some((attempt, reason)),
            _ => None,
        })
        .collect()
}

use crate::policy::hedge::{HedgeDelay, HedgeTarget};

#[test]
fn a_late_attempt_gets_one_hedge_and_the_first_success_cancels_the_other() {
    let mut h = Harness::new(hedged(HedgeDelay::Fixed(2 * SECS), HedgeTarget::Same), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 2 * SECS);
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    let (b, model, k, hedge) = s[0];
    assert_eq!((model, k, hedge), (0, 1, true));
    assert_ne!(a.slot(), b.slot(), "two live attempts, two slots");
    // The hedge answers first: the main attempt is cancelled, then finished.
    h.set_time(3 * SECS);
    let out = h.outcome(b, ok(BodyKind::Valid));
    assert_eq!(cancels(&out), [(a, CancelReason::HedgeLost)]);
    assert_eq!(result_of(finished(&out)), RequestResult::Success);
    assert_eq!((h.client.hedges(), h.client.hedge_wins()), (1, 1));
    // The loser's tokens up to the cancel still cost.
    let before = h.client.ledger().measured_total();
    h.outcome(
        a,
        Outcome::Cancelled {
            input_tokens: 1000,
            output_tokens: 0,
        },
    );
    assert_eq!(
        h.client.ledger().measured_total().0 - before.0,
        1_000_000,
        "1000 prompt tokens at 1 USD per million"
    );
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn the_main_attempt_winning_cancels_the_hedge() {
    let mut h = Harness::new(hedged(HedgeDelay::Fixed(SECS), HedgeTarget::Next), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.next_timer().unwrap();
    let (b, model, k, hedge) = sends(&out)[0];
    assert_eq!(
        (model, k, hedge),
        (1, 0, true),
        "the next model of the chain"
    );
    h.set_time(2 * SECS);
    let out = h.outcome(a, ok(BodyKind::Valid));
    assert_eq!(cancels(&out), [(b, CancelReason::HedgeLost)]);
    assert_eq!(result_of(finished(&out)), RequestResult::Success);
    assert_eq!((h.client.hedges(), h.client.hedge_wins()), (1, 0));
}

#[test]
fn an_attempt_with_its_first_token_in_time_is_not_hedged() {
    let mut h = Harness::new(hedged(HedgeDelay::Fixed(2 * SECS), HedgeTarget::Same), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(SECS);
    h.first_token(a);
    // Only the attempt's end timer is left, far away.
    assert!(h.client.poll_timeout().unwrap() > 20 * SECS);
    assert_eq!(h.client.hedges(), 0);
}

#[test]
fn a_failure_beside_a_running_attempt_waits_for_it_and_only_one_hedge_is_sent() {
    let mut h = Harness::new(hedged(HedgeDelay::Fixed(SECS), HedgeTarget::Same), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let (b, ..) = sends(&h.next_timer().unwrap())[0];
    // The hedge fails: no retry while the main attempt still runs.
    h.set_time(2 * SECS);
    assert!(h
        .outcome(b, http(503, ErrorType::Overloaded, None))
        .is_empty());
    // The main attempt fails too: now the retry rules apply (backoff 1 s).
    h.set_time(3 * SECS);
    assert!(h
        .outcome(a, http(503, ErrorType::Overloaded, None))
        .is_empty());
    let out = h.next_timer().unwrap();
    let (c, model, k, hedge) = sends(&out)[0];
    assert_eq!((h.now, model, k, hedge), (4 * SECS, 0, 2, false));
    // The retry is late as well, but the request has had its hedge.
    h.set_time(6 * SECS);
    h.client.handle_timeout(h.now);
    assert!(h.client.poll_action().is_none());
    let out = h.outcome(c, ok(BodyKind::Valid));
    assert_eq!(result_of(finished(&out)), RequestResult::Success);
    assert_eq!(h.client.hedges(), 1);
}

#[test]
fn the_deadline_cancels_both_attempts() {
    let mut h = Harness::new(hedged(HedgeDelay::Fixed(SECS), HedgeTarget::Same), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let (b, ..) = sends(&h.next_timer().unwrap())[0];
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 30 * SECS);
    assert_eq!(
        cancels(&out),
        [(a, CancelReason::Deadline), (b, CancelReason::Deadline)]
    );
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Deadline)
    );
}

#[test]
fn a_percentile_delay_waits_for_samples_then_follows_them() {
    let mut h = Harness::new(hedged(HedgeDelay::Quantile(0.95), HedgeTarget::Same), 1);
    // Until the model has enough samples, nothing is hedged.
    for i in 0..crate::policy::hedge::MIN_SAMPLES as u64 {
        let t0 = h.now;
        let r = Request {
            deadline: t0 + 30 * SECS,
            ..req(i)
        };
        let (a, ..) = sent(&h.request(r)).unwrap();
        h.set_time(t0 + 100 * MILLIS + i * MILLIS);
        assert!(h.first_token(a).is_empty());
        h.set_time(t0 + SECS);
        h.outcome(a, ok(BodyKind::Valid));
    }
    assert_eq!(h.client.hedges(), 0);
    // Time to first token was 100..150 ms: the p95 is 147 ms.
    let t0 = h.now;
    let r = Request {
        deadline: t0 + 30 * SECS,
        ..req(1000)
    };
    assert!(sent(&h.request(r)).is_some());
    let out = h.next_timer().unwrap();
    assert_eq!(h.now - t0, 147 * MILLIS);
    assert_eq!(sends(&out).len(), 1);
}

fn guarded(action: crate::policy::cost_guard::GuardAction) -> StrategyConfig {
    let mut c = cfg();
    // b is the cheaper model of the chain.
    c.models[1].price_in = 100_000;
    c.models[1].price_out = 200_000;
    c.cost_guard = Some(crate::policy::cost_guard::CostGuardConfig {
        hourly: Some(NanoUsd(2_000_000)),
        daily: None,
        alerts: vec![NanoUsd(1_000_000)],
        action,
    });
    c
}

fn alerts(actions: &[Action]) -> Vec<(Nanos, crate::policy::cost_guard::AlertKind)> {
    actions
        .iter()
        .filter_map(|a| match *a {
            Action::Alert { at, alert } => Some((at, alert.kind)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cost_guard_alerts_then_rejects_new_requests_until_the_next_hour() {
    use crate::policy::cost_guard::{AlertKind, GuardAction, HOUR};
    let mut h = Harness::new(guarded(GuardAction::Reject), 1);
    // Each success bills 1.2 mUSD: the first crosses the 1 mUSD threshold,
    // the second the 2 mUSD hourly limit.
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(SECS);
    let out = h.outcome(a, ok(BodyKind::Valid));
    assert_eq!(alerts(&out), [(SECS, AlertKind::CostThreshold)]);
    let (b, ..) = sent(&h.request(req(2))).unwrap();
    h.set_time(2 * SECS);
    let out = h.outcome(b, ok(BodyKind::Valid));
    assert_eq!(alerts(&out), [(2 * SECS, AlertKind::HourlyLimit)]);
    let out = h.request(req(3));
    assert!(sent(&out).is_none());
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::CostLimit)
    );
    // A new hour, a new budget.
    h.set_time(HOUR);
    let r = Request {
        deadline: HOUR + 30 * SECS,
        ..req(4)
    };
    assert!(sent(&h.request(r)).is_some());
}

#[test]
fn a_downgrading_guard_sends_new_requests_to_the_cheapest_model_only() {
    use crate::policy::cost_guard::GuardAction;
    let mut h = Harness::new(guarded(GuardAction::Downgrade), 1);
    for i in 0..2 {
        let (a, model, _) = sent(&h.request(req(i))).unwrap();
        assert_eq!(model, 0);
        h.outcome(a, ok(BodyKind::Valid));
    }
    let (a, model, _) = sent(&h.request(req(3))).unwrap();
    assert_eq!(model, 1, "b is the cheapest of the chain");
    assert_eq!(h.client.downgraded(), 1);
    // No fallback to the pricier model: the request fails on b.
    let out = h.outcome(a, http(500, ErrorType::Server, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::ServerError)
    );
}

fn rate_limited(wait: bool) -> StrategyConfig {
    StrategyConfig {
        rate_limit: Some(crate::policy::rate_limit::RateLimitConfig {
            rpm: Some(60),
            tpm: None,
            burst: 2 * SECS,
            per: crate::policy::rate_limit::LimitPer::Provider,
            wait,
            from_headers: false,
            fleet: false,
        }),
        ..cfg()
    }
}

#[test]
fn a_rate_limit_paces_attempts_and_sheds_what_would_miss_the_deadline() {
    // 1 request per second, 2 deep.
    let mut h = Harness::new(rate_limited(true), 1);
    assert!(sent(&h.request(req(1))).is_some());
    assert!(sent(&h.request(req(2))).is_some());
    // The third waits a second for the bucket, then goes.
    assert!(h.request(req(3)).is_empty());
    assert_eq!(h.client.paced(), 1);
    let out = h.next_timer().unwrap();
    assert_eq!((h.now, sent(&out).map(|s| s.1)), (SECS, Some(0)));
    // Reservations queue in order: the next ones wait 1 s more each, and
    // one that could not start before its deadline is shed at once.
    assert!(h.request(req(4)).is_empty());
    let short = Request {
        deadline: h.now + 1500 * MILLIS,
        ..req(5)
    };
    let out = h.request(short);
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Shed)
    );
    // Shed on a, then on b (the same provider, the same bucket).
    assert_eq!(h.client.shed(), 2);
    let out = h.next_timer().unwrap();
    assert_eq!((h.now, sent(&out).is_some()), (2 * SECS, true));
}

#[test]
fn a_shedding_rate_limit_never_waits() {
    let mut h = Harness::new(rate_limited(false), 1);
    assert!(sent(&h.request(req(1))).is_some());
    assert!(sent(&h.request(req(2))).is_some());
    // Both models share one provider here: nothing left to fall back to.
    let out = h.request(req(3));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Shed)
    );
    assert_eq!(h.client.poll_timeout().map(|t| t >= 30 * SECS), Some(true));
}

#[test]
fn per_key_limits_keep_a_bucket_per_key() {
    let mut c = rate_limited(false);
    if let Some(r) = c.rate_limit.as_mut() {
        r.per = crate::policy::rate_limit::LimitPer::Key;
        r.burst = SECS;
    }
    // Model a rotates keys 0 and 1: one request per key fits at once.
    let mut h = Harness::new(c, 1);
    assert!(sent(&h.request(req(1))).is_some());
    assert!(sent(&h.request(req(2))).is_some());
    // Both of a's keys are empty: the request moves on to b (key 2).
    let (_, model, _) = sent(&h.request(req(3))).unwrap();
    assert_eq!(model, 1);
}

fn bulkhead(limit: u32, queue: u32) -> StrategyConfig {
    StrategyConfig {
        concurrency: Some(crate::policy::concurrency::ConcurrencyConfig::Fixed { limit, queue }),
        ..cfg()
    }
}

#[test]
fn a_bulkhead_queues_then_sheds_and_lets_the_queue_go_in_order() {
    let mut h = Harness::new(bulkhead(1, 1), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    assert!(h.request(req(2)).is_empty(), "queued");
    let out = h.request(req(3));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Shed)
    );
    assert_eq!((h.client.queued(), h.client.shed()), (1, 1));
    h.set_time(SECS);
    let out = h.outcome(a, ok(BodyKind::Valid));
    // Request 1 finishes, and request 2 goes at once.
    assert_eq!(result_of(finished(&out)), RequestResult::Success);
    match out.iter().find(|a| matches!(a, Action::Send { .. })) {
        Some(Action::Send { request, .. }) => assert_eq!(*request, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_queued_request_gives_up_at_its_deadline() {
    let mut h = Harness::new(bulkhead(1, 4), 1);
    let (_a, ..) = sent(&h.request(req(1))).unwrap();
    let short = Request {
        deadline: 5 * SECS,
        ..req(2)
    };
    assert!(h.request(short).is_empty());
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 5 * SECS);
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Deadline)
    );
    assert!(sent(&out).is_none());
}

#[test]
fn an_aimd_limit_backs_off_on_429s() {
    let mut c = cfg();
    c.concurrency = Some(crate::policy::concurrency::ConcurrencyConfig::Aimd {
        initial: 10,
        min: 2,
        max: 20,
        backoff: 0.5,
        queue: 100,
    });
    c.retry.max_retries = 0;
    c.chains = [vec![], vec![], vec![]];
    let mut h = Harness::new(c, 1);
    for i in 0..3 {
        let (a, ..) = sent(&h.request(req(i))).unwrap();
        h.outcome(a, http(429, ErrorType::RateLimit, None));
    }
    assert_eq!(h.client.concurrency_limit(), Some(2));
}

fn with_key_pool() -> StrategyConfig {
    StrategyConfig {
        key_pool: Some(crate::policy::keys::KeyPoolConfig {
            select: crate::policy::keys::KeySelect::RoundRobin,
            rest: SECS,
        }),
        ..cfg()
    }
}

fn key_of(actions: &[Action]) -> Option<u16> {
    actions.iter().find_map(|a| match *a {
        Action::Send { key, .. } => Some(key),
        _ => None,
    })
}

#[test]
fn a_401_disables_the_key_and_retries_at_once_with_another() {
    let mut h = Harness::new(with_key_pool(), 1);
    let out = h.request(req(1));
    let (a, ..) = sent(&out).unwrap();
    assert_eq!(key_of(&out), Some(0));
    let out = h.outcome(a, http(401, ErrorType::Authentication, None));
    assert_eq!((key_of(&out), h.now), (Some(1), 0));
    assert_eq!(h.client.key_events(), (1, 0));
    // Key 0 is never used again.
    for i in 2..6 {
        assert_eq!(key_of(&h.request(req(i))), Some(1));
    }
}

#[test]
fn without_a_key_pool_a_401_is_final() {
    let mut h = Harness::new(cfg(), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.outcome(a, http(401, ErrorType::Authentication, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::ClientError)
    );
}

#[test]
fn a_429_rests_the_key_and_the_retry_takes_another_without_its_retry_after() {
    let mut h = Harness::new(with_key_pool(), 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    h.outcome(a, http(429, ErrorType::RateLimit, Some(20 * SECS)));
    // The backoff (1 s), not the key's 20 s retry-after.
    let out = h.next_timer().unwrap();
    assert_eq!((h.now, key_of(&out)), (SECS, Some(1)));
    // Until its retry-after, key 0 rests: new requests use key 1.
    assert_eq!(key_of(&h.request(req(2))), Some(1));
    assert_eq!(h.client.key_events(), (0, 1));
}

#[test]
fn when_every_key_is_disabled_the_model_is_skipped() {
    let mut c = with_key_pool();
    c.models[1].keys = vec![0, 1];
    let mut h = Harness::new(c, 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.outcome(a, http(401, ErrorType::Authentication, None));
    let (b, ..) = sent(&out).unwrap();
    let out = h.outcome(b, http(401, ErrorType::Authentication, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::NoKeyAvailable)
    );
}

#[test]
fn a_safe_default_answers_what_would_fail_as_malformed_and_bodies_are_counted() {
    let mut c = cfg();
    c.validation.safe_default = true;
    c.retry.max_retries = 0;
    let mut h = Harness::new(c, 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    // Malformed falls back to b; b's body is prose too: the safe default.
    let out = h.outcome(a, ok(BodyKind::PlainText));
    let (b, model, _) = sent(&out).unwrap();
    assert_eq!(model, 1);
    let out = h.outcome(b, ok(BodyKind::MissingFields));
    assert_eq!(result_of(finished(&out)), RequestResult::Success);
    let v = h.client.validation();
    assert_eq!((v.plain_text, v.missing_fields, v.safe_defaults), (1, 1, 1));
    // Other failures are not turned into a default.
    let (a, ..) = sent(&h.request(req(2))).unwrap();
    let out = h.outcome(a, http(400, ErrorType::InvalidRequest, None));
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::ClientError)
    );
}

#[test]
fn a_strict_client_refuses_fenced_json() {
    let mut c = cfg();
    c.validation.accept_fenced = false;
    let mut h = Harness::new(c, 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    let out = h.outcome(a, ok(BodyKind::Fenced));
    assert_eq!(sent(&out).map(|s| s.1), Some(1), "malformed: fall back");
    assert_eq!(h.client.validation().fenced, 1);
}

#[test]
fn a_breaker_per_key_takes_one_key_out_and_keeps_the_model() {
    let mut c = cfg();
    c.breaker = crate::policy::breaker::BreakerConfig::Cooldown {
        allowed_fails: 1,
        cooldown: 10 * SECS,
    };
    c.breaker_per_key = true;
    let mut h = Harness::new(c, 1);
    let mut keys = Vec::new();
    for i in 0..6 {
        let out = h.request(req(i));
        let (a, model, _) = sent(&out).unwrap();
        keys.push((model, key_of(&out).unwrap()));
        // Key 0 refuses (401, a key's trouble); key 1 answers.
        let o = if key_of(&out) == Some(0) {
            http(401, ErrorType::Authentication, None)
        } else {
            ok(BodyKind::Valid)
        };
        h.outcome(a, o);
    }
    // Two refusals open key 0's breaker; model a stays, on key 1.
    assert_eq!(keys, [(0, 0), (0, 1), (0, 0), (0, 1), (0, 1), (0, 1)]);
    assert_eq!(h.client.breaker_opens(), 1);
}

/// `n` replicas of `c` sharing its fleet-scoped state, as
/// `sim::tally::clients_for` makes them.
fn fleet_of(c: StrategyConfig, n: u32) -> Vec<Client> {
    use rand::SeedableRng;
    let c = Arc::new(c);
    let fleet = FleetState::new(&c);
    (0..n)
        .map(|r| {
            let mut client = Client::new(Arc::clone(&c), ChaCha8Rng::seed_from_u64(u64::from(r)));
            client.join_fleet(&fleet, r == 0);
            client
        })
        .collect()
}

/// Hands `client` request `id` at `now` and fails every attempt it sends at
/// once with a 503; returns the times of the retries it sent.
fn fail_everything(client: &mut Client, now: Nanos, id: u64) -> u32 {
    let mut retries = 0;
    client.handle_request(now, req(id));
    while let Some(a) = client.poll_action() {
        if let Action::Send {
            attempt,
            attempt_no,
            ..
        } = a
        {
            if attempt_no > 1 {
                retries += 1;
            }
            client.handle_outcome(
                now,
                attempt,
                http(503, ErrorType::Overloaded, None),
                RateLimits::default(),
            );
        }
    }
    retries
}

fn ratio_budgeted(percent: f64, min_per_s: f64, fleet: bool) -> StrategyConfig {
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.retry.backoff = Backoff::None;
    c.classify.set(FailureClass::Overloaded, Disposition::Retry);
    c.budget = crate::policy::retry::BudgetConfig::Ratio {
        percent,
        min_per_s,
        window: 10 * SECS,
    };
    c.fleet.budget = fleet;
    c
}

#[test]
fn replica_budgets_each_have_a_floor_and_a_fleet_budget_has_one() {
    // 8 replicas, 10 requests a second between them for 10 s, every attempt
    // failing: the fleet lets 10% of 100 requests plus 1/s x 10 s through;
    // 8 replica budgets each let their own floor of 10 through.
    let run = |fleet: bool| {
        let mut clients = fleet_of(ratio_budgeted(0.1, 1.0, fleet), 8);
        (0..100u64)
            .map(|i| {
                let r = (i % 8) as usize;
                fail_everything(&mut clients[r], i * 100 * MILLIS, i)
            })
            .sum::<u32>()
    };
    assert_eq!(run(true), 20);
    assert!(run(false) >= 80, "{}", run(false));
}

proptest::proptest! {
    /// Whenever a fleet ratio budget lets retries through, the retries of
    /// all its replicas over the 10 s window ending then stay within its
    /// ratio of all their requests over that window plus one floor.
    #[test]
    fn a_fleet_ratio_budget_never_admits_more_than_ratio_plus_floor(
        arrivals in proptest::collection::vec((0u64..30_000, 0usize..8), 1..400),
        percent in 0.0f64..0.5,
        min_per_s in 0.0f64..2.0,
        replicas in 1u32..8,
    ) {
        let mut arrivals = arrivals;
        arrivals.sort_unstable();
        let mut clients = fleet_of(ratio_budgeted(percent, min_per_s, true), replicas);
        // (second, requests, retries) in arrival order.
        let mut log: Vec<(u64, u32)> = Vec::new();
        for (i, &(ms, r)) in arrivals.iter().enumerate() {
            let now = ms * MILLIS;
            let client = &mut clients[r % replicas as usize];
            let retries = fail_everything(client, now, i as u64);
            let second = now / SECS;
            log.push((second, retries));
            if retries == 0 {
                // Checked when the budget lets a retry through, over the
                // window that ends then (Finagle's rule, as in ratio.rs).
                continue;
            }
            let in_window = |s: u64| s + 10 > second && s <= second;
            let requests = log.iter().filter(|(s, _)| in_window(*s)).count() as f64;
            let retried: u32 = log.iter().filter(|(s, _)| in_window(*s)).map(|(_, n)| n).sum();
            proptest::prop_assert!(
                f64::from(retried) <= requests * percent + min_per_s * 10.0 + 1e-9,
                "{} retries for {} requests", retried, requests
            );
        }
    }
}

/// Client `c`'s actions, as a driver drains them.
fn actions_of(c: &mut Client) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// The requests of the `Send`s among `actions`, with their attempts.
fn requests_sent(actions: &[Action]) -> Vec<(u64, AttemptId)> {
    actions
        .iter()
        .filter_map(|a| match *a {
            Action::Send {
                request, attempt, ..
            } => Some((request, attempt)),
            _ => None,
        })
        .collect()
}

/// What a driver does after an input: while the fleet's limit has a place
/// for some replica's oldest queued request, hands that replica the moment.
/// The `(replica, request, attempt)` sent.
fn serve_room(clients: &mut [Client], now: Nanos) -> Vec<(u32, u64, AttemptId)> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let Some(r) = clients[0].poll_room() else {
            return out;
        };
        clients[r as usize].handle_room(now);
        let a = actions_of(&mut clients[r as usize]);
        assert!(!a.is_empty(), "replica {r} was named but took nothing");
        out.extend(requests_sent(&a).into_iter().map(|(q, id)| (r, q, id)));
    }
    panic!("the queue never emptied");
}

fn fleet_bulkhead(limit: u32, queue: u32) -> StrategyConfig {
    let mut c = bulkhead(limit, queue);
    c.fleet.concurrency = true;
    c
}

#[test]
fn a_fleet_limit_gives_a_freed_place_to_the_oldest_waiter_of_any_replica() {
    // Two replicas, one place for both, a queue of 4.
    let mut f = fleet_of(fleet_bulkhead(1, 4), 2);
    f[0].handle_request(0, req(1));
    let a1 = requests_sent(&actions_of(&mut f[0]))[0].1;
    // Replica 1's request 2, then replica 0's request 3, wait.
    f[1].handle_request(SECS, req(2));
    assert!(actions_of(&mut f[1]).is_empty());
    f[0].handle_request(2 * SECS, req(3));
    assert!(actions_of(&mut f[0]).is_empty());
    assert_eq!(f[0].poll_room(), None, "no place free");
    // Request 1 ends at 3 s: replica 0 does not take the place for its own
    // request 3, replica 1's older request 2 is named.
    f[0].handle_outcome(3 * SECS, a1, ok(BodyKind::Valid), RateLimits::default());
    let out = actions_of(&mut f[0]);
    assert!(requests_sent(&out).is_empty() && finished(&out).is_some());
    assert_eq!(f[1].poll_room(), Some(1));
    // A new arrival at that instant, on replica 0, queues behind both.
    f[0].handle_request(3 * SECS, req(4));
    assert!(actions_of(&mut f[0]).is_empty(), "it jumped the queue");
    // The driver hands replica 1 the moment: request 2 goes at 3 s.
    let served = serve_room(&mut f, 3 * SECS);
    assert_eq!(
        served.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        [(1, 2)]
    );
    assert_eq!((f[0].queued(), f[1].queued()), (2, 1));
    // When request 2's attempt ends, replica 0's request 3 goes, then its
    // request 4 when 3 ends (its own head: it needs no driver's help).
    f[1].handle_outcome(
        4 * SECS,
        served[0].2,
        ok(BodyKind::Valid),
        RateLimits::default(),
    );
    assert!(requests_sent(&actions_of(&mut f[1])).is_empty());
    let served = serve_room(&mut f, 4 * SECS);
    assert_eq!(
        served.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        [(0, 3)]
    );
    f[0].handle_outcome(
        5 * SECS,
        served[0].2,
        ok(BodyKind::Valid),
        RateLimits::default(),
    );
    let out = actions_of(&mut f[0]);
    assert_eq!(
        requests_sent(&out).iter().map(|s| s.0).collect::<Vec<_>>(),
        [4]
    );
    assert_eq!(f[0].poll_room(), None);
}

#[test]
fn a_fleet_queue_is_one_queue_for_all_replicas() {
    // One place and one queue place for the fleet: the first waiter fills
    // the queue, a second one on another replica is shed.
    let mut f = fleet_of(fleet_bulkhead(1, 1), 3);
    f[0].handle_request(0, req(1));
    assert_eq!(requests_sent(&actions_of(&mut f[0])).len(), 1);
    f[1].handle_request(0, req(2));
    assert!(actions_of(&mut f[1]).is_empty());
    f[2].handle_request(0, req(3));
    assert_eq!(
        result_of(finished(&actions_of(&mut f[2]))),
        RequestResult::Failed(FailReason::Shed)
    );
    // A waiter whose deadline comes leaves the queue: room for another.
    f[1].handle_timeout(30 * SECS);
    let out = actions_of(&mut f[1]);
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Deadline)
    );
    let later = Request {
        deadline: 60 * SECS,
        ..req(4)
    };
    f[2].handle_request(30 * SECS, later);
    assert!(actions_of(&mut f[2]).is_empty(), "queued, not shed");
}

proptest::proptest! {
    /// Replicas sharing a fleet limit, driven as the drivers do: never more
    /// attempts in flight than the limit, never a free place while a
    /// request waits, and waiting requests start in the order they queued,
    /// whichever replica holds them.
    #[test]
    fn a_fleet_limit_is_one_fifo_bulkhead(
        ops in proptest::collection::vec((0u8..4, 0usize..4, 0usize..64), 1..200),
        limit in 1u32..5,
        replicas in 1u32..5,
    ) {
        let mut f = fleet_of(fleet_bulkhead(limit, 1000), replicas);
        // Live attempts: (replica, attempt); requests waiting, oldest first.
        let mut live: Vec<(usize, AttemptId)> = Vec::new();
        let mut waiting: VecDeque<u64> = VecDeque::new();
        for (i, &(kind, r, pick)) in ops.iter().enumerate() {
            let now = i as u64 * MILLIS;
            let r = r % replicas as usize;
            let id = i as u64;
            // 0, 1: an arrival; 2: an attempt ends; 3: an attempt ends and
            // a request arrives at that instant, before the driver hands
            // the freed place round.
            if kind >= 2 && !live.is_empty() {
                let (lr, a) = live.remove(pick % live.len());
                f[lr].handle_outcome(now, a, ok(BodyKind::Valid), RateLimits::default());
                for (q, a) in requests_sent(&actions_of(&mut f[lr])) {
                    proptest::prop_assert_eq!(waiting.pop_front(), Some(q));
                    live.push((lr, a));
                }
            }
            if kind != 2 || live.is_empty() {
                f[r].handle_request(now, req(id));
                match requests_sent(&actions_of(&mut f[r]))[..] {
                    [] => waiting.push_back(id),
                    [(_, a)] => {
                        // Only when nobody waits.
                        proptest::prop_assert!(waiting.is_empty());
                        live.push((r, a));
                    }
                    _ => proptest::prop_assert!(false, "two sends"),
                }
            }
            for (rr, q, a) in serve_room(&mut f, now) {
                proptest::prop_assert_eq!(waiting.pop_front(), Some(q));
                live.push((rr as usize, a));
            }
            proptest::prop_assert!(live.len() <= limit as usize);
            proptest::prop_assert!(live.len() == limit as usize || waiting.is_empty());
        }
    }
}

fn layered(layers: &[(&str, u32)], own_retries: u32) -> StrategyConfig {
    let mut c = cfg();
    c.chains = [vec![], vec![], vec![]];
    c.retry.max_retries = own_retries;
    c.retry.backoff = Backoff::None;
    c.classify.set(FailureClass::Overloaded, Disposition::Retry);
    c.layers = layers
        .iter()
        .map(|&(name, max_retries)| crate::policy::config::LayerConfig {
            name: name.into(),
            retry: RetryConfig {
                max_retries,
                ..c.retry
            },
            classify: c.classify,
            timeout: None,
        })
        .collect();
    c
}

#[test]
fn retries_multiply_across_layers() {
    // An app loop (2 retries) around a gateway (2) around an SDK (2): a
    // request that always fails makes 3 x 3 x 3 = 27 attempts; one loop
    // with the same six retries makes 7.
    let mut nested = fleet_of(layered(&[("app", 2), ("gateway", 2)], 2), 1);
    let mut attempts = 0;
    nested[0].handle_request(0, req(1));
    while let Some(a) = nested[0].poll_action() {
        if let Action::Send { attempt, .. } = a {
            attempts += 1;
            nested[0].handle_outcome(
                0,
                attempt,
                http(503, ErrorType::Overloaded, None),
                RateLimits::default(),
            );
        } else if let Action::Finish { attempts: n, .. } = a {
            assert_eq!(n, 27);
        }
    }
    assert_eq!(attempts, 27);
    // The app retried twice; the gateway twice in each of the app's 3 passes.
    assert_eq!(nested[0].layer_retries(), [2, 6, 0, 0]);
    let mut flat = fleet_of(layered(&[], 6), 1);
    assert_eq!(fail_everything(&mut flat[0], 0, 1), 6);
    // A failure the outer layers do not retry ends the request as before.
    let mut c = layered(&[("app", 2)], 2);
    c.layers[0]
        .classify
        .set(FailureClass::Overloaded, Disposition::Fail);
    let mut one = fleet_of(c, 1);
    assert_eq!(fail_everything(&mut one[0], 0, 1), 2);
}

#[test]
fn an_outer_layer_applies_its_own_retry_after_and_should_retry_rules() {
    // The inner loop makes no retries, so what follows the first failure
    // is the app layer's own decision.
    let attempts_after = |app: RetryConfig, outcome: Outcome| {
        let mut c = layered(&[("app", 2)], 0);
        c.layers[0].retry = app;
        let mut one = fleet_of(c, 1);
        let mut n = 0;
        one[0].handle_request(0, req(1));
        while let Some(a) = one[0].poll_action() {
            if let Action::Send { attempt, .. } = a {
                n += 1;
                one[0].handle_outcome(0, attempt, outcome, RateLimits::default());
            }
        }
        n
    };
    let base = layered(&[("app", 2)], 0).layers[0].retry;
    // A retry-after past the layer's bound: "give_up" ends the layer,
    // "backoff" ignores the header and retries at the step.
    let long = http(503, ErrorType::Overloaded, Some(100 * SECS));
    let give_up = RetryConfig {
        too_long_retry_after: crate::policy::TooLongRetryAfter::GiveUp,
        ..base
    };
    assert_eq!(attempts_after(give_up, long), 1);
    let backoff = RetryConfig {
        too_long_retry_after: crate::policy::TooLongRetryAfter::Backoff,
        ..base
    };
    assert_eq!(attempts_after(backoff, long), 3);
    // `x-should-retry: false` stops a layer that honours it.
    let no = Outcome::HttpError {
        status: 503,
        error: ErrorType::Overloaded,
        retry_after: None,
        should_retry: Some(false),
    };
    assert_eq!(attempts_after(base, no), 1);
    let deaf = RetryConfig {
        honor_should_retry: false,
        ..base
    };
    assert_eq!(attempts_after(deaf, no), 3);

    // `retry_after_replaces_backoff`: the layer waits the header's 1 s
    // instead of its 5 s step.
    let wake_after = |replaces: bool| {
        let mut c = layered(&[("app", 2)], 0);
        c.layers[0].retry = RetryConfig {
            backoff: Backoff::Constant { base: 5 * SECS },
            retry_after_replaces_backoff: replaces,
            retry_after_keeps_step: false,
            ..base
        };
        let mut one = fleet_of(c, 1);
        one[0].handle_request(0, req(1));
        while let Some(a) = one[0].poll_action() {
            if let Action::Send { attempt, .. } = a {
                one[0].handle_outcome(
                    0,
                    attempt,
                    http(429, ErrorType::RateLimit, Some(SECS)),
                    RateLimits::default(),
                );
            }
        }
        one[0].poll_timeout()
    };
    assert_eq!(wake_after(true), Some(SECS));
    assert_eq!(wake_after(false), Some(5 * SECS));
}

/// `poll_timeout` remembers the timer it last found live; every input that
/// makes that timer stale must make it look again, whether it touches the
/// timer's own request or another one.
#[test]
fn the_remembered_head_timer_goes_stale_with_its_request() {
    let mut c = cfg();
    c.timeouts = [Timeouts {
        first_token: Some(5 * SECS),
        ..Timeouts::default()
    }; 3];
    let mut h = Harness::new(c, 1);
    let (a, ..) = sent(&h.request(req(1))).unwrap();
    assert_eq!(h.client.poll_timeout(), Some(5 * SECS));
    assert_eq!(h.client.poll_timeout(), Some(5 * SECS), "asked again");
    // Its first token disarms the first-token timer: the end timer (capped
    // at the 30 s deadline) is next.
    h.set_time(SECS);
    h.first_token(a);
    assert_eq!(h.client.poll_timeout(), Some(30 * SECS));
    // Another request's first-token timer comes before it, then goes.
    h.set_time(2 * SECS);
    let (b, ..) = sent(&h.request(req(2))).unwrap();
    assert_eq!(h.client.poll_timeout(), Some(7 * SECS));
    h.set_time(3 * SECS);
    h.outcome(b, ok(BodyKind::Valid));
    assert_eq!(h.client.poll_timeout(), Some(30 * SECS));
    // The first request ends: nothing is left, and its slot's next tenant
    // is not mistaken for it.
    h.outcome(a, ok(BodyKind::Valid));
    assert_eq!(h.client.poll_timeout(), None);
    h.request(req(3));
    assert_eq!(h.client.poll_timeout(), Some(8 * SECS));
}

/// What a step of the harness did, for exact timelines: (time, what).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// An attempt, due by this deadline.
    Send(Nanos),
    Cancel(CancelReason),
    Finish(RequestResult, u32),
}

fn steps(out: &[Action], now: Nanos) -> Vec<(Nanos, Step)> {
    out.iter()
        .filter_map(|a| match *a {
            Action::Send { deadline, .. } => Some(Step::Send(deadline)),
            Action::Cancel { reason, .. } => Some(Step::Cancel(reason)),
            Action::Finish {
                result, attempts, ..
            } => Some(Step::Finish(result, attempts)),
            Action::Alert { .. } => None,
        })
        .map(|s| (now, s))
        .collect()
}

/// Runs request `r` through `h`, answering every cancel at once and
/// nothing else (every attempt hangs), until it finishes.
fn hang_everything(h: &mut Harness, r: Request) -> Vec<(Nanos, Step)> {
    let mut log = steps(&h.request(r), h.now);
    while let Some(out) = h.next_timer() {
        for a in &out {
            if let Action::Cancel { attempt, .. } = *a {
                h.outcome(
                    attempt,
                    Outcome::Cancelled {
                        input_tokens: 1000,
                        output_tokens: 0,
                    },
                );
            }
        }
        log.extend(steps(&out, h.now));
    }
    log
}

/// An app loop (2 retries, 1 s apart, 30 s `timeout`) around an SDK loop
/// (2 retries, 1 s apart, its own `total` timeout), requests due in 200 s.
fn app_timeout_around_sdk(sdk_total: Nanos, sdk_wait: Nanos) -> (StrategyConfig, Request) {
    let mut c = layered(&[("app", 2)], 2);
    c.retry.backoff = Backoff::Constant { base: sdk_wait };
    c.timeouts = [Timeouts {
        total: Some(sdk_total),
        ..Timeouts::default()
    }; 3];
    c.layers[0].retry.backoff = Backoff::Constant { base: SECS };
    c.layers[0].timeout = Some(30 * SECS);
    let mut r = req(1);
    r.deadline = 200 * SECS;
    (c, r)
}

#[test]
fn a_layer_timeout_cuts_each_pass_of_a_hanging_sdk_and_the_layer_retries_it() {
    use Step::{Cancel, Finish, Send};
    // The SDK's 600 s timeout never comes: each pass is cut at the app's
    // 30 s and the app retries it after 1 s, three passes in all.
    let (c, r) = app_timeout_around_sdk(600 * SECS, SECS);
    let mut h = Harness::new(c, 1);
    assert_eq!(
        hang_everything(&mut h, r),
        [
            (0, Send(30 * SECS)),
            (30 * SECS, Cancel(CancelReason::PassTimeout)),
            (31 * SECS, Send(61 * SECS)),
            (61 * SECS, Cancel(CancelReason::PassTimeout)),
            (62 * SECS, Send(92 * SECS)),
            (92 * SECS, Cancel(CancelReason::PassTimeout)),
            (
                92 * SECS,
                Finish(RequestResult::Failed(FailReason::Timeout), 3)
            ),
        ]
    );
    assert_eq!(h.client.layer_retries(), [2, 0, 0, 0]);
    // The app's timeout ended all three passes, and it counts them.
    assert_eq!(h.client.layer_pass_timeouts(), [3, 0, 0, 0]);
    // Every cancelled attempt still bills what it had used.
    assert_eq!(h.client.ledger().all[0].input_tokens, 3000);

    // With a 20 s SDK timeout, the SDK's own retry inside a pass is cut
    // to what is left of the pass (deadline propagation): 20 s + 1 s, then
    // an attempt due at the pass's 30 s rather than at its own 41 s.
    let (c, r) = app_timeout_around_sdk(20 * SECS, SECS);
    let mut h = Harness::new(c, 1);
    let log = hang_everything(&mut h, r);
    assert_eq!(
        log[..6],
        [
            (0, Send(20 * SECS)),
            (20 * SECS, Cancel(CancelReason::TotalTimeout)),
            (21 * SECS, Send(30 * SECS)),
            (30 * SECS, Cancel(CancelReason::PassTimeout)),
            (31 * SECS, Send(51 * SECS)),
            (51 * SECS, Cancel(CancelReason::TotalTimeout)),
        ]
    );
    assert_eq!(
        log.last(),
        Some(&(
            92 * SECS,
            Finish(RequestResult::Failed(FailReason::Timeout), 6)
        ))
    );
}

#[test]
fn a_layer_timeout_drops_a_pending_inner_wait_and_the_deadline_still_wins() {
    use Step::{Cancel, Finish, Send};
    // The SDK's 15 s wait after its 20 s timeout would end at 35 s: the
    // pass ends at 30 s during the wait, and the app's retry comes at 31 s.
    // A concurrent budget of one retry in flight: the retry granted for
    // the dropped wait must be given back, or the SDK's next retry (after
    // its timeout at 51 s) would be refused and the app's come at 52 s.
    let (mut c, r) = app_timeout_around_sdk(20 * SECS, 15 * SECS);
    c.budget = crate::policy::retry::BudgetConfig::Concurrent {
        percent: 0.0,
        min_concurrent: 1,
    };
    let mut h = Harness::new(c, 1);
    let log = hang_everything(&mut h, r);
    assert_eq!(
        log[..6],
        [
            (0, Send(20 * SECS)),
            (20 * SECS, Cancel(CancelReason::TotalTimeout)),
            (31 * SECS, Send(51 * SECS)),
            (51 * SECS, Cancel(CancelReason::TotalTimeout)),
            (62 * SECS, Send(82 * SECS)),
            (82 * SECS, Cancel(CancelReason::TotalTimeout)),
        ]
    );
    assert_eq!(h.client.retries_denied(), 0);
    // A pass that ends during a wait, with no attempt to cancel, is ended
    // by the timeout all the same: all three passes are counted.
    assert_eq!(h.client.layer_pass_timeouts(), [3, 0, 0, 0]);

    // A request due at 45 s: its deadline comes before the second pass's
    // end (61 s) and ends the request as the deadline always does.
    let (c, mut r) = app_timeout_around_sdk(600 * SECS, SECS);
    r.deadline = 45 * SECS;
    let mut h = Harness::new(c, 1);
    assert_eq!(
        hang_everything(&mut h, r)[2..],
        [
            (31 * SECS, Send(45 * SECS)),
            (45 * SECS, Cancel(CancelReason::Deadline)),
            (
                45 * SECS,
                Finish(RequestResult::Failed(FailReason::Deadline), 2)
            ),
        ]
    );
    // The first pass's end only: the deadline is no pass timeout.
    assert_eq!(h.client.layer_pass_timeouts(), [1, 0, 0, 0]);
}

/// An app (1 retry) around a gateway (2 retries), both 1 s apart, with
/// these `timeout`s, around an SDK that never retries, on a hung provider;
/// requests due in 200 s.
fn app_around_gateway(app: u64, gateway: u64) -> Harness {
    let mut c = layered(&[("app", 1), ("gateway", 2)], 0);
    c.timeouts = [Timeouts {
        total: Some(600 * SECS),
        ..Timeouts::default()
    }; 3];
    for (l, t) in c.layers.iter_mut().zip([app, gateway]) {
        l.retry.backoff = Backoff::Constant { base: SECS };
        l.timeout = Some(t * SECS);
    }
    Harness::new(c, 1)
}

#[test]
fn each_layer_counts_the_passes_its_timeout_ended() {
    use Step::{Cancel, Finish, Send};
    let mut r = req(1);
    r.deadline = 200 * SECS;
    // The gateway's 30 s ends the SDK's passes at 30 s and 91 s; the app's
    // 60 s ends the gateway's at 60 s and 121 s.
    let mut h = app_around_gateway(60, 30);
    assert_eq!(
        hang_everything(&mut h, r),
        [
            (0, Send(30 * SECS)),
            (30 * SECS, Cancel(CancelReason::PassTimeout)),
            (31 * SECS, Send(60 * SECS)),
            (60 * SECS, Cancel(CancelReason::PassTimeout)),
            (61 * SECS, Send(91 * SECS)),
            (91 * SECS, Cancel(CancelReason::PassTimeout)),
            (92 * SECS, Send(121 * SECS)),
            (121 * SECS, Cancel(CancelReason::PassTimeout)),
            (
                121 * SECS,
                Finish(RequestResult::Failed(FailReason::Timeout), 4)
            ),
        ]
    );
    assert_eq!(h.client.layer_retries(), [1, 2, 0, 0]);
    assert_eq!(h.client.layer_pass_timeouts(), [2, 2, 0, 0]);
    // Both bounds at 30 s end both passes at once: the app's, the
    // outermost, takes the timeout (and retries), and counts it alone.
    let mut h = app_around_gateway(30, 30);
    let log = hang_everything(&mut h, r);
    assert_eq!(
        log.last(),
        Some(&(
            61 * SECS,
            Finish(RequestResult::Failed(FailReason::Timeout), 2)
        ))
    );
    assert_eq!(h.client.layer_retries(), [1, 0, 0, 0]);
    assert_eq!(h.client.layer_pass_timeouts(), [2, 0, 0, 0]);
}

#[test]
fn a_layer_retry_whose_wait_an_enclosing_pass_end_drops_is_not_counted() {
    // An app (1 retry after 1 s, 10 s `timeout`) around a gateway (2
    // retries, 20 s apart) around an SDK that never retries; every attempt
    // gets a 503 at once. The gateway's retries wait past the app's pass
    // end (10 s, then 21 s): both are dropped, so the gateway made none,
    // and its passes (requests + the app's retries) are the two that ran.
    let mut c = layered(&[("app", 1), ("gateway", 2)], 0);
    c.layers[0].retry.backoff = Backoff::Constant { base: SECS };
    c.layers[0].timeout = Some(10 * SECS);
    c.layers[1].retry.backoff = Backoff::Constant { base: 20 * SECS };
    let mut r = req(1);
    r.deadline = 200 * SECS;
    let (sends, end) = send_times(c.clone(), r, 0);
    assert_eq!((sends, end), (vec![0, 11 * SECS], 21 * SECS));
    let mut h = Harness::new(c, 1);
    let mut out = h.request(r);
    while finished(&out).is_none() {
        out = match sent(&out) {
            Some((id, ..)) => h.outcome(id, http(503, ErrorType::Overloaded, None)),
            None => h.next_timer().expect("a timer"),
        };
    }
    assert_eq!(h.client.layer_retries(), [1, 0, 0, 0]);
    assert_eq!(h.client.layer_pass_timeouts(), [2, 0, 0, 0]);
}

/// Sends of request `r` under `c` when every attempt fails with a 503
/// `fail_after` after it was sent: their times, and the finish time.
fn send_times(c: StrategyConfig, r: Request, fail_after: Nanos) -> (Vec<Nanos>, Nanos) {
    let mut h = Harness::new(c, 1);
    let mut sends = Vec::new();
    let mut out = h.request(r);
    loop {
        if let Some(Action::Finish { .. }) = finished(&out) {
            return (sends, h.now);
        }
        if let Some((id, ..)) = sent(&out) {
            sends.push(h.now);
            h.set_time(h.now + fail_after);
            out = h.outcome(id, http(503, ErrorType::Overloaded, None));
        } else {
            out = h.next_timer().expect("a timer");
        }
    }
}

#[test]
fn every_loop_s_max_elapsed_counts_from_the_start_of_its_pass() {
    let mut r = req(1);
    r.deadline = 200 * SECS;
    // The SDK (5 retries, 1 s apart, at most 10 s) inside an app loop (1
    // retry after 1 s); every attempt fails 4 s after it is sent. The SDK
    // retries at 5 s and 10 s and gives up at 14 s (15 s > 10 s); the app's
    // retry at 15 s starts a new pass, whose 10 s count from 15 s.
    let mut c = layered(&[("app", 1)], 5);
    c.retry.backoff = Backoff::Constant { base: SECS };
    c.retry.max_elapsed = Some(10 * SECS);
    c.layers[0].retry.backoff = Backoff::Constant { base: SECS };
    let s = SECS;
    assert_eq!(
        send_times(c, r, 4 * SECS),
        (vec![0, 5 * s, 10 * s, 15 * s, 20 * s, 25 * s], 29 * s)
    );
    // The same for a middle layer: a gateway (5 retries, 1 s apart, at
    // most 10 s) between the app and an SDK that does not retry.
    let mut c = layered(&[("app", 1), ("gateway", 5)], 0);
    for l in &mut c.layers {
        l.retry.backoff = Backoff::Constant { base: SECS };
    }
    c.layers[1].retry.max_elapsed = Some(10 * SECS);
    assert_eq!(
        send_times(c, r, 4 * SECS),
        (vec![0, 5 * s, 10 * s, 15 * s, 20 * s, 25 * s], 29 * s)
    );
    // Without layers the pass is the request: as before.
    let mut c = layered(&[], 5);
    c.retry.backoff = Backoff::Constant { base: SECS };
    c.retry.max_elapsed = Some(10 * SECS);
    assert_eq!(send_times(c, r, 4 * SECS), (vec![0, 5 * s, 10 * s], 14 * s));
}

#[test]
fn an_outer_layer_s_decorrelated_jitter_remembers_its_last_wait_within_a_pass() {
    // An app loop (1 retry after 10 s) around a gateway with decorrelated
    // jitter (base 1 s, cap 1000 s, 3 retries) around an SDK that does not
    // retry; every attempt fails at once. Gaps between sends: the
    // gateway's three waits, the app's 10 s, the gateway's three again.
    let mut c = layered(&[("app", 1), ("gateway", 3)], 0);
    c.layers[0].retry.backoff = Backoff::Constant { base: 10 * SECS };
    c.layers[1].retry.backoff = Backoff::Decorrelated {
        base: SECS,
        cap: 1000 * SECS,
    };
    let mut beyond_three_bases = 0;
    for id in 0..40 {
        let mut r = req(id);
        r.deadline = 10_000 * SECS;
        let (sends, _) = send_times(c.clone(), r, 0);
        assert_eq!(sends.len(), 8);
        let gaps: Vec<Nanos> = sends.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps[3], 10 * SECS);
        for pass in [&gaps[..3], &gaps[4..]] {
            // A pass starts with no memory: base to 3 x base.
            assert!((SECS..3 * SECS).contains(&pass[0]), "{gaps:?}");
            for w in pass.windows(2) {
                // Then base to 3 x the previous wait.
                assert!(w[1] >= SECS && w[1] <= 3 * w[0], "{gaps:?}");
                beyond_three_bases += u32::from(w[1] >= 3 * SECS);
            }
        }
    }
    // Only a memory of the previous wait reaches past 3 x base.
    assert!(beyond_three_bases > 10, "{beyond_three_bases}");
}

proptest::proptest! {
    /// Whatever the layers, their timeouts, retries and waits, with or
    /// without hedging and a bulkhead, and however attempts end (hang,
    /// fail or succeed, at any time): every attempt's deadline lies within
    /// the passes it runs in and the request's deadline, every attempt has
    /// ended (answered or cancelled) by its deadline, and every request
    /// finishes by its deadline, leaving nothing queued.
    #[test]
    fn no_attempt_outlives_its_enclosing_passes(
        layers in proptest::collection::vec(
            (proptest::option::of(1u64..60), 0u32..3, 0u64..5_000),
            1..=MAX_LAYERS,
        ),
        own_retries in 0u32..3,
        own_wait_ms in 0u64..5_000,
        total_s in 1u64..100,
        deadline_s in 1u64..400,
        arrivals_ms in proptest::collection::vec(0u64..20_000, 1..4),
        hedge_ms in proptest::option::of(100u64..10_000),
        bulkhead in proptest::option::of((1u32..3, 0u32..3)),
        // Per attempt, in order: 0 hangs, 1 fails, 2 succeeds; after ms.
        script in proptest::collection::vec((0u8..3, 0u64..40_000), 1..64),
    ) {
        let names = ["a", "b", "c", "d"];
        let spec: Vec<(&str, u32)> =
            layers.iter().zip(names).map(|(&(_, n, _), name)| (name, n)).collect();
        let mut c = layered(&spec, own_retries);
        c.retry.backoff = Backoff::Constant { base: own_wait_ms * MILLIS };
        c.classify.set(FailureClass::Timeout, Disposition::Retry);
        c.timeouts = [Timeouts { total: Some(total_s * SECS), ..Timeouts::default() }; 3];
        for (l, &(t, _, w)) in c.layers.iter_mut().zip(&layers) {
            l.timeout = t.map(|t| t * SECS);
            l.retry.backoff = Backoff::Decorrelated { base: w * MILLIS + 1, cap: 10 * SECS };
            l.classify = c.classify;
        }
        c.hedge = hedge_ms.map(|d| crate::policy::hedge::HedgeConfig {
            delay: crate::policy::hedge::HedgeDelay::Fixed(d * MILLIS),
            target: crate::policy::hedge::HedgeTarget::Same,
        });
        c.concurrency = bulkhead.map(|(limit, queue)| {
            crate::policy::concurrency::ConcurrencyConfig::Fixed { limit, queue }
        });
        let timeouts: Vec<Option<Nanos>> = c.layers.iter().map(|l| l.timeout).collect();
        let mut arrivals: Vec<(Nanos, Request)> = arrivals_ms
            .iter()
            .enumerate()
            .map(|(i, &ms)| {
                let mut r = req(i as u64);
                r.deadline = ms * MILLIS + deadline_s * SECS;
                (ms * MILLIS, r)
            })
            .collect();
        arrivals.sort_by_key(|a| std::cmp::Reverse(a.0));
        let deadlines: Vec<Nanos> = {
            let mut d: Vec<(u64, Nanos)> = arrivals.iter().map(|a| (a.1.id, a.1.deadline)).collect();
            d.sort_unstable();
            d.into_iter().map(|x| x.1).collect()
        };
        let mut h = Harness::new(c, 7);
        // Live attempts: (request, deadline), and the answers due.
        let mut live: BTreeMap<AttemptId, (u64, Nanos)> = BTreeMap::new();
        let mut due: Vec<(Nanos, AttemptId, Outcome)> = Vec::new();
        let mut sends = 0usize;
        let mut finished = 0usize;
        let mut out = Vec::new();
        for _ in 0..10_000 {
            for a in &out {
                match *a {
                    Action::Send { attempt, request, deadline, .. } => {
                        let r_deadline = deadlines[request as usize];
                        proptest::prop_assert!(deadline > h.now && deadline <= r_deadline);
                        let p = h.client.passes[slot_lane(attempt).0 as usize];
                        for (i, t) in timeouts.iter().enumerate() {
                            let Some(t) = *t else { continue };
                            // The pass inside layer `i` began no later than
                            // this attempt and ends no earlier than it.
                            proptest::prop_assert!(p.start[i + 1] <= h.now);
                            proptest::prop_assert!(deadline <= p.start[i + 1] + t);
                            proptest::prop_assert!(deadline - h.now <= t);
                        }
                        live.insert(attempt, (request, deadline));
                        let (kind, after) = script[sends % script.len()];
                        sends += 1;
                        let o = match kind {
                            0 => None,
                            1 => Some(http(503, ErrorType::Overloaded, None)),
                            _ => Some(ok(BodyKind::Valid)),
                        };
                        if let Some(o) = o {
                            due.push((h.now + after * MILLIS, attempt, o));
                        }
                    }
                    Action::Cancel { attempt, .. } => {
                        let (_, deadline) = live.remove(&attempt).expect("a live attempt");
                        proptest::prop_assert!(h.now <= deadline);
                        due.retain(|d| d.1 != attempt);
                        let cancelled = Outcome::Cancelled { input_tokens: 0, output_tokens: 0 };
                        due.push((h.now, attempt, cancelled));
                    }
                    Action::Finish { request, .. } => {
                        proptest::prop_assert!(h.now <= deadlines[request as usize]);
                        // Its attempts have ended or been cancelled.
                        proptest::prop_assert!(live.values().all(|l| l.0 != request));
                        finished += 1;
                    }
                    Action::Alert { .. } => {}
                }
            }
            // The next input: an arrival, an answer due (first, at a tie
            // with a timer, so an answer may come at the very end of a
            // pass) or a timer.
            due.sort_by_key(|d| d.0);
            let timer = h.client.poll_timeout();
            let answer = due.first().map(|d| d.0);
            let arrival = arrivals.last().map(|a| a.0);
            let first = [arrival, answer, timer].into_iter().flatten().min();
            let Some(at) = first else { break };
            h.set_time(at.max(h.now));
            if arrival == Some(at) {
                let (_, r) = arrivals.pop().expect("an arrival");
                out = h.request(r);
            } else if answer == Some(at) {
                let (_, id, o) = due.remove(0);
                if !matches!(o, Outcome::Cancelled { .. }) {
                    let (_, deadline) = live.remove(&id).expect("a live attempt");
                    proptest::prop_assert!(h.now <= deadline);
                }
                out = h.outcome(id, o);
            } else {
                out = h.next_timer().expect("a timer");
                // Once the timers due now have fired, no request is still
                // in a pass (or past a deadline) that has ended: a timer
                // caught each end on time.
                for i in 0..8 {
                    let rs = &h.client.requests;
                    if let Some(st) = rs.handle_at(i).and_then(|x| rs.get(x)) {
                        proptest::prop_assert!(st.cut > h.now, "{} <= {}", st.cut, h.now);
                    }
                }
            }
        }
        proptest::prop_assert_eq!(finished, deadlines.len(), "a request never finished");
        proptest::prop_assert!(live.is_empty());
        proptest::prop_assert_eq!(h.client.waiting.len(), 0);
        proptest::prop_assert_eq!(h.client.in_flight(), 0);
    }
}

#[test]
fn a_layer_timeout_takes_a_request_out_of_the_fleet_queue() {
    // One place for two replicas and an app layer bounding each pass to
    // 5 s. Request 1 holds the place; request 2 waits in the fleet's queue
    // when its pass ends: it fails with a timeout and leaves the queue, so
    // the place request 1 frees goes straight to a new arrival.
    let mut c = fleet_bulkhead(1, 4);
    let mut layered = layered(&[("app", 0)], 0);
    layered.layers[0].timeout = Some(5 * SECS);
    c.layers = layered.layers;
    let mut f = fleet_of(c, 2);
    f[0].handle_request(0, req(1));
    assert_eq!(requests_sent(&actions_of(&mut f[0])).len(), 1);
    f[1].handle_request(0, req(2));
    assert!(actions_of(&mut f[1]).is_empty(), "queued");
    assert_eq!(f[1].poll_timeout(), Some(5 * SECS));
    f[1].handle_timeout(5 * SECS);
    assert_eq!(
        result_of(finished(&actions_of(&mut f[1]))),
        RequestResult::Failed(FailReason::Timeout)
    );
    // Request 1's pass ends too, and its place frees with nobody waiting.
    f[0].handle_timeout(5 * SECS);
    let out = actions_of(&mut f[0]);
    assert_eq!(
        result_of(finished(&out)),
        RequestResult::Failed(FailReason::Timeout)
    );
    assert_eq!(f[0].poll_room(), None);
    f[1].handle_request(5 * SECS, req(3));
    let sent = requests_sent(&actions_of(&mut f[1]));
    assert_eq!(sent.iter().map(|s| s.0).collect::<Vec<_>>(), [3]);
}

/// A lane's live attempt fits one cache line, with its `Option` (tens of
/// thousands of requests are in flight, each event touching its own).
#[test]
fn a_live_attempt_fits_a_cache_line() {
    assert!(std::mem::size_of::<Option<Live>>() <= 64);
    assert_eq!(MaybeAt::new(None), MaybeAt::NONE);
    assert_eq!(MaybeAt::new(Some(7)).get(), Some(7));
    assert_eq!(MaybeAt::NONE.get(), None);
}

#[test]
fn a_replica_queue_stays_fifo_when_a_pass_timeout_requeues_a_request() {
    // One place, a queue of 4, an app layer bounding each pass to 5 s with
    // one retry. Request 2 (A) queues at 1 s, request 3 (B) at 2 s. A's
    // pass ends at 6 s while it waits: its layer retries and A queues
    // again, now behind B, so B gets the next place.
    let mut c = layered(&[("app", 1)], 0);
    c.layers[0].timeout = Some(5 * SECS);
    c.concurrency =
        Some(crate::policy::concurrency::ConcurrencyConfig::Fixed { limit: 1, queue: 4 });
    let mut h = Harness::new(c, 1);
    let (a1, ..) = sent(&h.request(req(1))).unwrap();
    h.set_time(SECS);
    assert!(h.request(req(2)).is_empty(), "A queued");
    h.set_time(2 * SECS);
    assert!(h.request(req(3)).is_empty(), "B queued");
    // Request 1 fails at 4 s; its layer retries at once in a new pass.
    h.set_time(4 * SECS);
    let out = h.outcome(a1, http(503, ErrorType::Overloaded, None));
    let (a2, ..) = sent(&out).expect("request 1 retried");
    let out = h.next_timer().unwrap();
    assert_eq!(h.now, 6 * SECS);
    assert!(sent(&out).is_none() && finished(&out).is_none(), "{out:?}");
    h.set_time(6 * SECS + SECS / 2);
    let out = h.outcome(a2, ok(BodyKind::Valid));
    let next = out.iter().find_map(|a| match a {
        Action::Send { request, .. } => Some(*request),
        _ => None,
    });
    assert_eq!(next, Some(3), "{out:?}");
}

/// The waits `c`'s client takes after each of `fails`, met one by one by
/// the attempts of one request.
fn waits_after(c: StrategyConfig, fails: &[Outcome]) -> Vec<Nanos> {
    let mut h = Harness::new(c, 1);
    let (mut id, ..) = sent(&h.request(req(1))).unwrap();
    let mut waits = Vec::new();
    for (i, o) in fails.iter().enumerate() {
        assert!(h.outcome(id, *o).is_empty(), "fail {i} is retried");
        let at = h.now;
        let next = h.next_timer().expect("a retry is due");
        waits.push(h.now - at);
        id = sent(&next).expect("the retry is sent").0;
    }
    waits
}

/// async-openai 0.43's loop: 100 ms x 2^n up to 8 s, where a wait a
/// `retry-after` set does not advance n (its `backoff_attempt`).
fn async_openai_retry(keeps: bool) -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        backoff: Backoff::Exponential {
            base: 100 * MILLIS,
            cap: 8 * SECS,
        },
        retry_after_replaces_backoff: true,
        retry_after_keeps_step: keeps,
        ..cfg().retry
    }
}

#[test]
fn a_wait_retry_after_set_leaves_the_backoff_step_where_it_was() {
    let e503 = http(503, ErrorType::Overloaded, None);
    let e429 = http(429, ErrorType::RateLimit, Some(2 * SECS));
    let run = |keeps: bool, fails: &[Outcome]| {
        let mut c = cfg();
        c.retry = async_openai_retry(keeps);
        waits_after(c, fails)
    };
    // A 429 with `retry-after: 2` first: the 503s after it go on from the
    // first step, 100 ms then 200 ms; without the rule the header's wait
    // took step 0, so they wait 200 ms and 400 ms.
    let fails = [e429, e503, e503];
    assert_eq!(run(true, &fails), [2 * SECS, 100 * MILLIS, 200 * MILLIS]);
    assert_eq!(run(false, &fails), [2 * SECS, 200 * MILLIS, 400 * MILLIS]);
    // In the middle: 100 ms, the header's 2 s, then 200 ms (not 400 ms).
    let fails = [e503, e429, e503, e503];
    assert_eq!(
        run(true, &fails),
        [100 * MILLIS, 2 * SECS, 200 * MILLIS, 400 * MILLIS]
    );
    assert_eq!(
        run(false, &fails),
        [100 * MILLIS, 2 * SECS, 400 * MILLIS, 800 * MILLIS]
    );
    // The header still counts against the retries: the fifth fail is final.
    let mut c = cfg();
    c.retry = async_openai_retry(true);
    c.chains = [vec![], vec![], vec![]];
    let mut h = Harness::new(c, 1);
    let (mut id, ..) = sent(&h.request(req(1))).unwrap();
    for _ in 0..4 {
        h.outcome(id, e429);
        id = sent(&h.next_timer().unwrap()).unwrap().0;
    }
    let out = h.outcome(id, e429);
    assert!(matches!(
        finished(&out),
        Some(Action::Finish { attempts: 5, .. })
    ));
}

#[test]
fn a_layer_keeps_its_backoff_step_after_a_retry_after_too() {
    let e503 = http(503, ErrorType::Overloaded, None);
    let e429 = http(429, ErrorType::RateLimit, Some(SECS));
    let run = |keeps: bool| {
        // The strategy's own loop gives up at once; the layer retries.
        let mut c = layered(&[("app", 4)], 0);
        c.layers[0].retry = async_openai_retry(keeps);
        waits_after(c, &[e503, e429, e503, e503])
    };
    assert_eq!(run(true), [100 * MILLIS, SECS, 200 * MILLIS, 400 * MILLIS]);
    assert_eq!(run(false), [100 * MILLIS, SECS, 400 * MILLIS, 800 * MILLIS]);
}
