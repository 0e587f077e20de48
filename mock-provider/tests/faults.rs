//! Faults over real loopback sockets: every forced fault as a client meets
//! it, capacity and queueing (a disconnected client's work keeps its slot),
//! the admin clock and fail-first, and the draws: the simulator's for a
//! client that sends a draw key, a repeatable sequence for one that does not.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stormglass::world::draws::AttemptDraws;
use support::{admin, chat, messages, send, sse_events, Server};

fn ask(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello there" }], "max_tokens": 100 })
}

fn streaming(model: &str) -> Value {
    let mut b = ask(model);
    b["stream"] = json!(true);
    b
}

const KEY: &str = "free-key-0001";

async fn forced(s: &Server, fault: &str, body: &Value) -> Result<support::Reply, String> {
    let auth = format!("Bearer {KEY}");
    send(
        s.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("x-stormglass-fault", fault),
        ],
        body.to_string(),
        Duration::from_millis(1500),
    )
    .await
}

#[tokio::test]
async fn forced_statuses_carry_the_providers_errors() {
    let s = Server::start(Default::default()).await;
    for (fault, status, kind) in [
        ("500", 500, "server_error"),
        ("503", 503, "server_error"),
        ("529", 529, "server_error"),
        ("429", 429, "requests"),
        ("insufficient_quota", 429, "insufficient_quota"),
    ] {
        let r = forced(&s, fault, &ask("fast")).await.expect("a reply");
        assert_eq!(r.status, status, "{fault}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], kind, "{fault}");
    }
    let r = forced(&s, "insufficient_quota", &ask("fast"))
        .await
        .expect("a reply");
    assert_eq!(r.header("x-should-retry"), Some("false"));
    assert!(r.header("retry-after").is_none());
    let r = forced(&s, "429", &ask("fast")).await.expect("a reply");
    assert!(r.header("retry-after").is_some());
    let r = messages(
        s.addr,
        "ant-key-00001",
        &ask("claude"),
        &[("x-stormglass-fault", "529")],
    )
    .await;
    assert_eq!(r.status, 529);
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    // Out of credit, Anthropic answers 400, not OpenAI's 429.
    let r = messages(
        s.addr,
        "ant-key-00001",
        &ask("claude"),
        &[("x-stormglass-fault", "insufficient_quota")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("credit balance is too low")),
        "{e}"
    );
    assert_eq!(r.header("x-should-retry"), Some("false"));
    s.stop().await;
}

#[tokio::test]
async fn resets_breaks_stalls_and_hangs_look_as_they_do_on_the_wire() {
    let s = Server::start(Default::default()).await;
    // A reset before any header: no response at all.
    let r = forced(&s, "reset", &ask("fast")).await;
    assert!(r.is_err(), "a reset gives no response: {r:?}");

    // A broken non-streamed answer: the body stops half way.
    let r = forced(&s, "broken", &ask("fast")).await.expect("headers");
    assert_eq!(r.status, 200);
    assert!(
        r.body_error.as_deref().is_some_and(|e| e != "timed out"),
        "{:?}",
        r.body_error
    );
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    // A broken OpenAI stream: some chunks, then an error event, no [DONE].
    let r = forced(&s, "broken", &streaming("streamer"))
        .await
        .expect("headers");
    assert_eq!(r.status, 200);
    let events = sse_events(&r.text());
    assert!(events.len() >= 2, "{}", r.text());
    let last: Value = serde_json::from_str(&events[events.len() - 1].1).expect("JSON");
    assert_eq!(last["error"]["type"], "server_error", "{}", r.text());
    assert!(!r.text().contains("[DONE]"));

    // A reset of a stream before its first token: no answer at all. Where
    // a reset falls is the try's `position` draw over the whole response
    // (200 ms to the first token, then up to 2 s of tokens), so the try is
    // picked by a draw key whose reset comes in the first 5%.
    let sc = stormglass::scenario::load(std::path::Path::new(support::SCENARIO)).expect("loads");
    let streamer = sc
        .world
        .models
        .iter()
        .position(|m| m.name == "streamer")
        .expect("streamer") as u64;
    let early = (0..1000u64)
        .find(|&r| AttemptDraws::new(sc.seed, r, streamer, 0).position < 0.05)
        .expect("an early reset among 1000 tries");
    let auth = format!("Bearer {KEY}");
    let draw = format!("request={early};try=0");
    let r = send(
        s.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("x-stormglass-fault", "reset"),
            ("x-stormglass-draw", draw.as_str()),
        ],
        streaming("streamer").to_string(),
        Duration::from_millis(1500),
    )
    .await;
    assert!(r.is_err(), "a reset before the first token: {r:?}");

    // A broken Anthropic stream ends with an error event.
    let r = messages(
        s.addr,
        "ant-key-00001",
        &streaming("claude"),
        &[("x-stormglass-fault", "broken")],
    )
    .await;
    let events = sse_events(&r.text());
    assert_eq!(
        events.last().and_then(|e| e.0.as_deref()),
        Some("error"),
        "{}",
        r.text()
    );
    assert!(!events
        .iter()
        .any(|e| e.0.as_deref() == Some("message_stop")));

    // A stall: chunks stop coming, the stream never ends (the client gives up).
    let r = forced(&s, "stall", &streaming("streamer"))
        .await
        .expect("headers");
    assert_eq!(r.body_error.as_deref(), Some("timed out"));
    assert!(!r.text().contains("[DONE]"));
    // Non-streamed: half a body, then nothing.
    let r = forced(&s, "stall", &ask("fast")).await.expect("headers");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_error.as_deref(), Some("timed out"));

    // A hang: no headers ever.
    let started = Instant::now();
    let hang =
        tokio::time::timeout(Duration::from_millis(500), forced(&s, "hang", &ask("fast"))).await;
    assert!(hang.is_err(), "no answer to a hang");
    assert!(started.elapsed() >= Duration::from_millis(500));

    // Slow: the slow tail's factor (none configured on `fast`, so as usual).
    let r = forced(&s, "slow", &ask("fast")).await.expect("reply");
    assert_eq!(r.status, 200);

    // Malformed content, when the client asked for JSON.
    let mut json_ask = ask("fast");
    json_ask["response_format"] = json!({ "type": "json_object" });
    let content = |r: &support::Reply| {
        r.json()["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .expect("content")
    };
    let ok = chat(s.addr, KEY, &json_ask, &[]).await;
    let v: Value = serde_json::from_str(&content(&ok)).expect("valid JSON content");
    assert!(v["answer"].is_string());
    for kind in ["fenced", "truncated", "plain_text"] {
        let r = forced(&s, kind, &json_ask).await.expect("reply");
        assert!(
            serde_json::from_str::<Value>(&content(&r)).is_err(),
            "{kind}: {}",
            content(&r)
        );
    }
    let r = forced(&s, "missing_fields", &json_ask)
        .await
        .expect("reply");
    let v: Value = serde_json::from_str(&content(&r)).expect("JSON, without the field");
    assert!(v.get("answer").is_none());

    // Hangs and stalls in flight do not keep the server from stopping.
    let hanging = tokio::spawn({
        let addr = s.addr;
        async move {
            let auth = format!("Bearer {KEY}");
            send(
                addr,
                "POST",
                "/v1/chat/completions",
                &[
                    ("authorization", auth.as_str()),
                    ("x-stormglass-fault", "hang"),
                ],
                ask("fast").to_string(),
                Duration::from_secs(30),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), hanging)
        .await
        .expect("the hung request ended with the server");
}

#[tokio::test]
async fn a_client_that_leaves_does_not_free_its_slot_unless_the_provider_cancels() {
    let s = Server::start(Default::default()).await;
    let addr = s.addr;
    // `one-slot` (OpenAI, keeps work): 1 slot, 1 queue place, 800 ms to the
    // first token. A client gives up after 100 ms; its work goes on.
    let gone = tokio::time::timeout(
        Duration::from_millis(100),
        chat(addr, KEY, &ask("one-slot"), &[]),
    )
    .await;
    assert!(gone.is_err());
    let started = Instant::now();
    let r = chat(addr, KEY, &ask("one-slot"), &[]).await;
    assert_eq!(r.status, 200);
    // Queued behind the abandoned job (about 700 ms more), then its own 800 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );

    // `claude-one-slot` (cancels on disconnect): 1 slot, no queue.
    let gone = tokio::time::timeout(
        Duration::from_millis(100),
        messages(addr, "ant-key-00001", &ask("claude-one-slot"), &[]),
    )
    .await;
    assert!(gone.is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let r = messages(addr, "ant-key-00001", &ask("claude-one-slot"), &[]).await;
    assert_eq!(r.status, 200, "the slot was freed: {}", r.text());
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );

    // Busy and no queue: 529 overloaded.
    let busy =
        tokio::spawn(
            async move { messages(addr, "ant-key-00001", &ask("claude-one-slot"), &[]).await },
        );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = messages(addr, "ant-key-00001", &ask("claude-one-slot"), &[]).await;
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    assert_eq!(busy.await.expect("no panic").status, 200);
    s.stop().await;
}

#[tokio::test]
async fn the_admin_clock_reaches_incidents_and_fail_first_fails_the_first_n() {
    let s = Server::start(Default::default()).await;
    let a = s.addr;
    assert_eq!(chat(a, KEY, &ask("fast"), &[]).await.status, 200);
    let v = admin(a, "/admin/clock", &json!({ "action": "jump", "by": "40m" })).await;
    assert!(
        v["now_ns"]
            .as_u64()
            .is_some_and(|n| n >= 40 * 60 * 1_000_000_000),
        "{v}"
    );
    let r = chat(a, KEY, &ask("fast"), &[]).await;
    assert_eq!(r.status, 503, "the outage at minute 40: {}", r.text());
    let v = admin(a, "/admin/clock", &json!({ "action": "set", "to": "45m" })).await;
    assert_eq!(v["now"], "45m");
    assert_eq!(chat(a, KEY, &ask("fast"), &[]).await.status, 200);

    let v = admin(a, "/admin/clock", &json!({ "action": "pause" })).await;
    assert_eq!(v["paused"], true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = admin(a, "/admin/clock", &json!({ "action": "jump", "by": "1s" })).await;
    assert_eq!(
        again["now_ns"].as_u64(),
        v["now_ns"].as_u64().map(|n| n + 1_000_000_000)
    );
    admin(a, "/admin/clock", &json!({ "action": "resume" })).await;

    // Reset: time zero and full pools.
    for _ in 0..4 {
        chat(a, "tight-key-one", &ask("fast"), &[]).await;
    }
    assert_eq!(
        chat(a, "tight-key-one", &ask("fast"), &[]).await.status,
        429
    );
    let v = admin(a, "/admin/clock", &json!({ "action": "reset" })).await;
    assert!(
        v["now_ns"].as_u64().is_some_and(|n| n < 1_000_000_000),
        "{v}"
    );
    let r = chat(a, "tight-key-one", &ask("fast"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("2"));

    let v = admin(
        a,
        "/admin/fail-first",
        &json!({ "count": 2, "fault": "503" }),
    )
    .await;
    assert_eq!(v["fail_first_left"], 2);
    let statuses = [
        chat(a, KEY, &ask("fast"), &[]).await.status,
        chat(a, KEY, &ask("fast"), &[]).await.status,
        chat(a, KEY, &ask("fast"), &[]).await.status,
    ];
    assert_eq!(statuses, [503, 503, 200]);

    // Bad admin requests are explained.
    let r = send(
        a,
        "POST",
        "/admin/clock",
        &[],
        r#"{"action":"rewind"}"#,
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown action"), "{}", r.text());
    let r = send(
        a,
        "POST",
        "/admin/clock",
        &[],
        r#"{"action":"jump"}"#,
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert_eq!(r.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn a_draw_key_gets_the_simulators_draws() {
    let s = Server::start(Default::default()).await;
    let sc = stormglass::scenario::load(std::path::Path::new(support::SCENARIO)).expect("loads");
    let flaky = sc
        .world
        .models
        .iter()
        .position(|m| m.name == "flaky")
        .expect("flaky") as u64;
    let mut both = [0, 0];
    for request in 0..24u64 {
        let try_no = request % 3;
        let expect_500 = AttemptDraws::new(sc.seed, request, flaky, try_no).fault < 0.5;
        both[usize::from(expect_500)] += 1;
        let header = format!("request={request};try={try_no}");
        let r = chat(
            s.addr,
            KEY,
            &ask("flaky"),
            &[("x-stormglass-draw", header.as_str())],
        )
        .await;
        assert_eq!(
            r.status,
            if expect_500 { 500 } else { 200 },
            "request {request} try {try_no}"
        );
    }
    assert!(both[0] > 0 && both[1] > 0, "{both:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_serial_client_without_a_draw_key_sees_the_same_faults_every_run() {
    async fn run() -> Vec<u16> {
        let s = Server::start(Default::default()).await;
        let mut statuses = Vec::new();
        for _ in 0..16 {
            statuses.push(chat(s.addr, KEY, &ask("flaky"), &[]).await.status);
        }
        s.stop().await;
        statuses
    }
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn the_clock_goes_back_only_by_a_reset_which_ends_the_old_worlds_answers() {
    let s = Server::start(Default::default()).await;
    let a = s.addr;
    admin(a, "/admin/clock", &json!({ "action": "set", "to": "10m" })).await;
    let r = send(
        a,
        "POST",
        "/admin/clock",
        &[],
        r#"{"action":"set","to":"1m"}"#,
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("reset"), "{}", r.text());

    // A request of the old world, waiting for its modelled end (800 ms of
    // queue-free service on `one-slot`), ends when the world is reset.
    let waiting = tokio::spawn(async move {
        let auth = format!("Bearer {KEY}");
        send(
            a,
            "POST",
            "/v1/chat/completions",
            &[
                ("authorization", auth.as_str()),
                ("x-stormglass-fault", "hang"),
            ],
            ask("fast").to_string(),
            Duration::from_secs(30),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    admin(a, "/admin/clock", &json!({ "action": "reset" })).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the old world's request ended at the reset")
        .expect("no panic");
    assert!(ended.is_err(), "it gets no answer: {ended:?}");
    assert_eq!(chat(a, KEY, &ask("fast"), &[]).await.status, 200);
    s.stop().await;
}
