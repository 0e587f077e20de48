use super::*;
use crate::dist::LogNormal;
use crate::units::{MILLIS, SECS};

fn model(slots: u32, queue: u32) -> ModelSpec {
    ModelSpec {
        max_tokens_field: Default::default(),
        name: "m".into(),
        provider: 0,
        price_in: 0,
        price_out: 0,
        // Degenerate distributions (sigma 0): 100 ms to first token, 10 tokens/s.
        ttft: LogNormal::from_median_p99(100.0 * MILLIS as f64, 100.0 * MILLIS as f64),
        tps: LogNormal::from_median_p1(10.0, 10.0),
        slow_p: 0.0,
        slow_factor: 1.0,
        occupancy_slowdown: 0.0,
        slots,
        queue,
        faults: FaultRates::default(),
    }
}

fn world(slots: u32, queue: u32, cancel: bool) -> World {
    World::new(Arc::new(WorldConfig {
        seed: 1,
        providers: vec![ProviderSpec {
            name: "p".into(),
            style: ApiStyle::Openai,
            cancel_on_disconnect: cancel,
            error_latency: 50 * MILLIS,
        }],
        models: vec![model(slots, queue)],
        pools: vec![PoolSpec {
            name: "p/pool".into(),
            provider: 0,
            rpm: Some(60.0),
            tpm: None,
            itpm: None,
            otpm: None,
            burst: SECS,
            count_rejected: false,
        }],
        keys: vec![
            KeySpec {
                name: "free".into(),
                provider: 0,
                pool: None,
                revoked_at: None,
                env: None,
            },
            KeySpec {
                name: "a".into(),
                provider: 0,
                pool: Some(0),
                revoked_at: None,
                env: None,
            },
            KeySpec {
                name: "b".into(),
                provider: 0,
                pool: Some(0),
                revoked_at: None,
                env: None,
            },
        ],
        incidents: Vec::new(),
    }))
}

fn attempt(key: usize, out: u32, tag: u64) -> AttemptInput {
    AttemptInput {
        model: 0,
        key,
        input_tokens: 10,
        max_tokens: 100,
        output_tokens: out,
        draws: AttemptDraws {
            fault: 0.5,
            ttft_z: 0.0,
            tps_z: 0.0,
            slow: 0.5,
            position: 0.5,
        },
        tag,
    }
}

#[test]
fn a_served_attempt_follows_its_timeline() {
    let mut w = world(1, 0, false);
    let Admission::Started(_, tl) = w.admit(0, attempt(0, 11, 1), &mut Vec::new()) else {
        panic!("not started")
    };
    assert_eq!(tl.first_token_at, Some(100 * MILLIS));
    // 10 more tokens at 10 tokens/s.
    assert_eq!(tl.end_at, 100 * MILLIS + SECS);
    assert_eq!(tl.end, JobEnd::Complete(BodyKind::Valid));
    assert_eq!(tl.tokens_by(600 * MILLIS), 6);
}

#[test]
fn a_full_queue_answers_overloaded() {
    let mut w = world(1, 1, false);
    assert!(matches!(
        w.admit(0, attempt(0, 11, 1), &mut Vec::new()),
        Admission::Started(..)
    ));
    assert!(matches!(
        w.admit(0, attempt(0, 11, 2), &mut Vec::new()),
        Admission::Queued(_)
    ));
    let Admission::Rejected(r) = w.admit(0, attempt(0, 11, 3), &mut Vec::new()) else {
        panic!("not rejected")
    };
    assert_eq!(r.status, 503);
    assert_eq!(r.error, ErrorType::Overloaded);
}

#[test]
fn abandoned_work_still_holds_its_slot() {
    let mut w = world(1, 1, false);
    let Admission::Started(first, tl) = w.admit(0, attempt(0, 11, 1), &mut Vec::new()) else {
        panic!()
    };
    let Admission::Queued(second) = w.admit(0, attempt(0, 11, 2), &mut Vec::new()) else {
        panic!()
    };
    let mut started = Vec::new();
    // The client gives up on both; the provider does not learn of it.
    let a = w.abandon(200 * MILLIS, first, &mut started);
    assert!(a.started);
    assert_eq!(a.output_tokens, 2);
    w.abandon(200 * MILLIS, second, &mut started);
    assert!(started.is_empty());
    assert_eq!(w.occupancy(0), (1, 1));
    // A new attempt still finds the slot taken and the queue full.
    assert!(matches!(
        w.admit(300 * MILLIS, attempt(0, 11, 3), &mut Vec::new()),
        Admission::Rejected(_)
    ));
    // Only when the abandoned job would have finished does the queue move,
    // and the abandoned queued job is served too.
    w.job_done(tl.end_at, first, &mut started);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].tag, 2);
    assert_eq!(w.occupancy(0), (1, 0));
}

#[test]
fn cancel_on_disconnect_frees_the_slot_at_once() {
    let mut w = world(1, 1, true);
    let Admission::Started(first, _) = w.admit(0, attempt(0, 11, 1), &mut Vec::new()) else {
        panic!()
    };
    let Admission::Queued(_) = w.admit(0, attempt(0, 11, 2), &mut Vec::new()) else {
        panic!()
    };
    let mut started = Vec::new();
    w.abandon(200 * MILLIS, first, &mut started);
    assert_eq!(
        started.len(),
        1,
        "the queued job starts when the slot frees"
    );
    assert_eq!(started[0].tag, 2);
    assert_eq!(started[0].timeline.started_at, 200 * MILLIS);
}

#[test]
fn queued_jobs_wait_for_a_slot() {
    let mut w = world(1, 5, false);
    let Admission::Started(first, tl) = w.admit(0, attempt(0, 11, 1), &mut Vec::new()) else {
        panic!()
    };
    let Admission::Queued(_) = w.admit(0, attempt(0, 11, 2), &mut Vec::new()) else {
        panic!()
    };
    let mut started = Vec::new();
    w.job_done(tl.end_at, first, &mut started);
    // Queueing delay shows up as a later first token.
    assert_eq!(
        started[0].timeline.first_token_at,
        Some(tl.end_at + 100 * MILLIS)
    );
}

#[test]
fn keys_of_one_pool_share_it() {
    // 60 rpm with a 1 s burst: one request per second for the whole pool.
    let mut w = world(10, 10, false);
    assert!(matches!(
        w.admit(0, attempt(1, 5, 1), &mut Vec::new()),
        Admission::Started(..)
    ));
    // A second key on the same pool adds no capacity.
    let Admission::Rejected(r) = w.admit(0, attempt(2, 5, 2), &mut Vec::new()) else {
        panic!("key b got through")
    };
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after, Some(SECS));
    assert_eq!(r.limits.remaining_requests, Some(0));
    // A key on no pool is not limited.
    assert!(matches!(
        w.admit(0, attempt(0, 5, 3), &mut Vec::new()),
        Admission::Started(..)
    ));
    // When the retry-after says, key b gets in.
    assert!(matches!(
        w.admit(SECS, attempt(2, 5, 4), &mut Vec::new()),
        Admission::Started(..)
    ));
}

#[test]
fn incidents_change_behaviour_only_in_their_window() {
    let mut cfg = (*world(10, 10, false).cfg).clone();
    cfg.incidents.push(IncidentSpec {
        name: "down".into(),
        start: 10 * SECS,
        end: 20 * SECS,
        target: Target::Model(0),
        effect: Effect::Outage(OutageMode::Fast),
    });
    cfg.incidents.push(IncidentSpec {
        name: "hole".into(),
        start: 30 * SECS,
        end: 40 * SECS,
        target: Target::Provider(0),
        effect: Effect::Outage(OutageMode::Blackhole),
    });
    cfg.incidents.push(IncidentSpec {
        name: "slow".into(),
        start: 50 * SECS,
        end: 60 * SECS,
        target: Target::Model(0),
        effect: Effect::Latency(3.0),
    });
    let mut w = World::new(Arc::new(cfg));
    assert!(matches!(
        w.admit(9 * SECS, attempt(0, 5, 1), &mut Vec::new()),
        Admission::Started(..)
    ));
    let Admission::Rejected(r) = w.admit(10 * SECS, attempt(0, 5, 2), &mut Vec::new()) else {
        panic!()
    };
    assert_eq!(r.status, 503);
    assert!(matches!(
        w.admit(20 * SECS, attempt(0, 5, 3), &mut Vec::new()),
        Admission::Started(..)
    ));
    assert_eq!(
        w.admit(35 * SECS, attempt(0, 5, 4), &mut Vec::new()),
        Admission::Hang
    );
    let Admission::Started(_, tl) = w.admit(55 * SECS, attempt(0, 5, 5), &mut Vec::new()) else {
        panic!()
    };
    assert_eq!(tl.first_token_at, Some(55 * SECS + 300 * MILLIS));
}

#[test]
fn one_uniform_picks_the_fault() {
    let mut cfg = (*world(10, 10, false).cfg).clone();
    cfg.models[0].faults = FaultRates {
        error_500: 0.1,
        hang: 0.1,
        reset: 0.1,
        broken_stream: 0.1,
        stall: 0.0,
        malformed: [
            (BodyKind::Fenced, 0.1),
            (BodyKind::Truncated, 0.0),
            (BodyKind::MissingFields, 0.0),
            (BodyKind::PlainText, 0.0),
        ],
    };
    let mut w = World::new(Arc::new(cfg));
    let mut at = |u: f64| {
        let mut a = attempt(0, 11, 1);
        a.draws.fault = u;
        w.admit(0, a, &mut Vec::new())
    };
    assert!(matches!(
        at(0.05),
        Admission::Rejected(Rejection { status: 500, .. })
    ));
    assert_eq!(at(0.15), Admission::Hang);
    assert!(matches!(
        at(0.25),
        Admission::Started(
            _,
            Timeline {
                end: JobEnd::Reset,
                ..
            }
        )
    ));
    assert!(matches!(
        at(0.35),
        Admission::Started(
            _,
            Timeline {
                end: JobEnd::Broken,
                ..
            }
        )
    ));
    assert!(matches!(
        at(0.45),
        Admission::Started(
            _,
            Timeline {
                end: JobEnd::Complete(BodyKind::Fenced),
                ..
            }
        )
    ));
    assert!(matches!(
        at(0.55),
        Admission::Started(
            _,
            Timeline {
                end: JobEnd::Complete(BodyKind::Valid),
                ..
            }
        )
    ));
}

#[test]
fn a_stalled_stream_sends_part_of_the_answer_then_nothing() {
    let mut cfg = (*world(10, 10, false).cfg).clone();
    cfg.models[0].faults.stall = 1.0;
    let mut w = World::new(Arc::new(cfg));
    let Admission::Started(_, tl) = w.admit(0, attempt(0, 11, 1), &mut Vec::new()) else {
        panic!()
    };
    // position 0.5 of 10 more tokens: the last chunk is token 6, at 600 ms.
    assert_eq!(tl.end, JobEnd::Stalled(600 * MILLIS));
    assert_eq!(tl.output_tokens, 6);
    // The provider keeps the slot as long as the whole answer would take.
    assert_eq!(tl.end_at, 100 * MILLIS + SECS);
    assert_eq!(tl.tokens_by(5 * SECS), 6);
}

#[test]
fn a_busy_model_streams_slower_when_it_slows_with_occupancy() {
    let mut cfg = (*world(4, 0, false).cfg).clone();
    cfg.models[0].occupancy_slowdown = 1.0;
    let mut w = World::new(Arc::new(cfg));
    let tps: Vec<f64> = (0..4)
        .map(|i| match w.admit(0, attempt(0, 11, i), &mut Vec::new()) {
            Admission::Started(_, tl) => tl.tps,
            other => panic!("{other:?}"),
        })
        .collect();
    // Started at occupancy 0, 1/4, 2/4, 3/4: 10 / (1 + occupancy).
    for (got, want) in tps.iter().zip([10.0, 8.0, 10.0 / 1.5, 10.0 / 1.75]) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
}

#[test]
fn the_slow_tail_and_malformed_bursts_follow_their_draws() {
    let mut cfg = (*world(4, 4, false).cfg).clone();
    cfg.models[0].slow_p = 0.1;
    cfg.models[0].slow_factor = 5.0;
    cfg.incidents.push(IncidentSpec {
        name: "bad json".into(),
        start: 0,
        end: SECS,
        target: Target::Model(0),
        effect: Effect::MalformedBurst {
            rate: 0.3,
            kind: BodyKind::PlainText,
        },
    });
    let mut w = World::new(Arc::new(cfg));
    let mut a = attempt(0, 11, 1);
    a.draws.slow = 0.05;
    a.draws.fault = 0.2;
    let Admission::Started(_, tl) = w.admit(0, a, &mut Vec::new()) else {
        panic!()
    };
    // Five times slower to the first token, and at a fifth of the speed.
    assert_eq!(tl.first_token_at, Some(500 * MILLIS));
    assert!((tl.tps - 2.0).abs() < 1e-9);
    assert_eq!(tl.end, JobEnd::Complete(BodyKind::PlainText));
    // After the burst, the same draw gets a valid body.
    let Admission::Started(_, tl) = w.admit(2 * SECS, a, &mut Vec::new()) else {
        panic!()
    };
    assert_eq!(tl.end, JobEnd::Complete(BodyKind::Valid));
}

#[test]
fn a_capacity_cut_shrinks_then_the_queue_moves_when_it_ends() {
    let mut cfg = (*world(4, 10, false).cfg).clone();
    cfg.incidents.push(IncidentSpec {
        name: "cut".into(),
        start: 0,
        end: 10 * SECS,
        target: Target::Model(0),
        effect: Effect::CapacityCut(0.25),
    });
    let mut w = World::new(Arc::new(cfg));
    let mut started = Vec::new();
    assert!(matches!(
        w.admit(0, attempt(0, 11, 1), &mut started),
        Admission::Started(..)
    ));
    assert!(matches!(
        w.admit(0, attempt(0, 11, 2), &mut started),
        Admission::Queued(_)
    ));
    assert!(matches!(
        w.admit(0, attempt(0, 11, 3), &mut started),
        Admission::Queued(_)
    ));
    // The cut ends; the next arrival finds the queue moving first.
    let a = w.admit(11 * SECS, attempt(0, 11, 4), &mut started);
    assert_eq!(started.iter().map(|s| s.tag).collect::<Vec<_>>(), [2, 3]);
    assert!(matches!(a, Admission::Started(..)));
}

proptest::proptest! {
    /// The world keeps only a compact record of a running job; what it says
    /// an abandoned answer had sent is still the timeline's own count, for
    /// every kind of ending, whether the job started at once or from the
    /// queue, at any time.
    #[test]
    fn an_abandoned_job_reports_its_timelines_tokens(
        fault in 0usize..5,
        position in 0.0f64..1.0,
        ttft_z in -3.0f64..3.0,
        out in 1u32..400,
        queued in proptest::bool::ANY,
        times in proptest::collection::vec(0u64..20 * SECS, 1..8),
    ) {
        let force = [Force::Serve, Force::Reset, Force::Broken, Force::Stall, Force::Slow][fault];
        let mut cfg = (*world(1, 1, false).cfg).clone();
        cfg.models[0].ttft = LogNormal::from_median_p99(100.0 * MILLIS as f64, 2.0 * SECS as f64);
        cfg.models[0].slow_factor = 3.0;
        let mut w = World::new(Arc::new(cfg));
        let mut a = attempt(0, out, 7);
        a.draws.position = position;
        a.draws.ttft_z = ttft_z;
        let mut started = Vec::new();
        let (job, tl) = if queued {
            let Admission::Started(first, first_tl) =
                w.admit_forced(0, attempt(0, 3, 1), Some(Force::Serve), &mut started)
            else {
                panic!("the first job starts")
            };
            let Admission::Queued(job) = w.admit_forced(0, a, Some(force), &mut started) else {
                panic!("the second job waits")
            };
            w.job_done(first_tl.end_at, first, &mut started);
            proptest::prop_assert_eq!(started.len(), 1);
            proptest::prop_assert_eq!(started[0].job, job);
            (job, started[0].timeline)
        } else {
            let Admission::Started(job, tl) = w.admit_forced(0, a, Some(force), &mut started) else {
                panic!("the job starts")
            };
            (job, tl)
        };
        for t in times {
            let now = tl.started_at + t;
            let ab = w.abandon(now, job, &mut started);
            proptest::prop_assert!(ab.started);
            proptest::prop_assert_eq!(ab.output_tokens, tl.tokens_by(now));
        }
    }
}

/// A quota cut applies to its pool's figures in its window only, and a
/// world without one announces the whole limit (the factor's shortcut).
#[test]
fn a_quota_cut_shows_in_the_figures_only_in_its_window() {
    let plain = world(10, 10, false);
    let mut cfg = (*plain.cfg).clone();
    cfg.incidents.push(IncidentSpec {
        name: "cut".into(),
        start: 10 * SECS,
        end: 20 * SECS,
        target: Target::Pool(0),
        effect: Effect::QuotaCut(0.5),
    });
    let mut w = World::new(Arc::new(cfg));
    let mut plain = plain;
    for (at, limit) in [(0, 60), (15 * SECS, 30), (25 * SECS, 60)] {
        assert_eq!(w.limits(1, at).limit_requests, Some(limit), "{at}");
        assert_eq!(plain.limits(1, at).limit_requests, Some(60), "{at}");
    }
    // The key without a pool has no figures either way.
    assert_eq!(w.limits(0, 15 * SECS), RateLimits::default());
}
