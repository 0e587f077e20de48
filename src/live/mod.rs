//! Live mode: the same sans-IO core, driven in real time against real HTTP
//! (our mock provider or any OpenAI/Anthropic-compatible endpoint).
//!
//! One tokio task owns every client core of a strategy's run, as the
//! simulator does; each `Send` becomes a task that performs the request
//! ([`http::attempt`]) and reports its first token, chunks and outcome back
//! over a channel. Load is open-loop: a request is handed to its client at
//! its scheduled time whatever happened to earlier ones, and its latency is
//! counted from that scheduled time, so a stall in the driver or the server
//! shows up as latency (no coordinated omission). How late the driver
//! handled each arrival is reported as its schedule lag.
//!
//! Against our mock provider (detected by its `/admin/clock`), the driver
//! resets the server's world before each strategy, sets its clock to
//! `--from`, and sends the draw key with every attempt, so the server's luck
//! matches the simulator's attempt for attempt.

pub mod conn;
pub mod http;
pub mod trace;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use tokio::sync::mpsc;

use crate::policy::{
    Action, AttemptId, CancelReason, Client, Outcome, RequestResult, StrategyConfig,
};
use crate::report::json::{LiveInfo, LiveStrategyInfo, Report};
use crate::report::{AttemptEnd, StrategyReport};
use crate::scenario::Scenario;
use crate::sim::tally::{self, Tally};
use crate::sim::traffic::{self, Sender, Source};
use crate::units::{format_duration, NanoUsd, Nanos, MICROS, SECS};
use crate::wire::RateLimits;

use http::{AttemptSpec, Http, Progress, Signal};

/// How a live run goes (the command line's flags).
#[derive(Clone, Debug, Default)]
pub struct LiveOptions {
    /// `http(s)://host:port` of the provider (or gateway).
    pub target: Option<String>,
    /// A PEM file of CA certificates to trust for an `https://` target,
    /// beside the platform's roots (a gateway's own CA, a test's).
    pub ca_cert: Option<std::path::PathBuf>,
    /// The most connections open to the target at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]); an attempt beyond it waits for one,
    /// its time still counted from its request's scheduled time.
    pub max_connections: Option<usize>,
    /// Start our mock provider for the scenario instead of a target.
    pub serve: bool,
    /// How much of the scenario to run (default: from `from` to its end).
    pub duration: Option<Nanos>,
    /// Where in the scenario to start.
    pub from: Nanos,
    /// Allow a target that is not on loopback.
    pub allow_remote: bool,
    /// Stop sending when the run has spent this much (USD).
    pub max_cost: Option<f64>,
    /// Strategies to run (default: all, one after another).
    pub strategies: Vec<String>,
    /// Show progress on standard error (when it is a terminal).
    pub progress: bool,
    /// Write each strategy's core trace (every input and action) here, as
    /// `<dir>/<strategy>.trace.jsonl`, for [`trace::replay`].
    pub trace: Option<std::path::PathBuf>,
}

/// The most connections the driver opens to the target by default: an
/// open-loop run against a slow target would otherwise open one per
/// attempt in flight until the process ran out of file descriptors (whose
/// usual soft limit is 1,024), and the failures would look like the
/// provider's resets.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Idle keep-alive connections kept for reuse, at most.
const MAX_IDLE: usize = 256;

/// Whether `host` (of a URL) is a loopback address.
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a target URL: `http(s)://host[:port]`, loopback unless allowed.
pub fn check_target(url: &str, allow_remote: bool, max_cost: Option<f64>) -> anyhow::Result<()> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        bail!("{url}: the target must be an http:// or https:// URL such as http://127.0.0.1:8080 or https://api.openai.com");
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => h,
        _ => authority,
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    if !is_loopback(host) {
        if !allow_remote {
            bail!("{url} is not a loopback address: a remote target needs --allow-remote and --max-cost USD");
        }
        if max_cost.is_none() {
            bail!("{url}: a remote target needs --max-cost USD (the run stops when its spend reaches it)");
        }
    }
    Ok(())
}

/// Runs the scenario's strategies live, one after another, and returns the
/// report (`"mode": "live"`).
pub fn run(sc: &Scenario, opts: &LiveOptions) -> anyhow::Result<Report> {
    let mut server = None;
    let base = match (&opts.target, opts.serve) {
        (Some(_), true) => bail!("--target and --serve exclude each other"),
        (None, false) => {
            bail!("give --target http://HOST:PORT, or --serve to start the mock provider")
        }
        (Some(t), false) => t.trim_end_matches('/').to_string(),
        (None, true) => {
            let args = ["--seed".into(), sc.seed.to_string().into()];
            let m = crate::serve::MockProvider::start(&sc.path, &args)?;
            let url = m.url.clone();
            server = Some(m);
            url
        }
    };
    check_target(&base, opts.allow_remote, opts.max_cost)?;
    if opts.from >= sc.duration {
        bail!(
            "--from {} is past the scenario's end ({})",
            format_duration(opts.from),
            format_duration(sc.duration)
        );
    }
    let window = opts
        .duration
        .unwrap_or(sc.duration - opts.from)
        .min(sc.duration - opts.from);
    let strategies: Vec<Arc<StrategyConfig>> = if opts.strategies.is_empty() {
        sc.strategies.clone()
    } else {
        let mut picked = Vec::new();
        for name in &opts.strategies {
            match sc.strategies.iter().find(|s| &s.name == name) {
                Some(s) => picked.push(Arc::clone(s)),
                None => {
                    let known: Vec<&str> = sc.strategies.iter().map(|s| s.name.as_str()).collect();
                    bail!(
                        "no strategy `{name}` in the scenario (it has: {})",
                        known.join(", ")
                    );
                }
            }
        }
        picked
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let max_connections = opts.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    let tls = base.starts_with("https://");
    if opts.ca_cert.is_some() && !tls {
        bail!("--ca-cert is for an https:// target; {base} is plain http");
    }
    let result = rt.block_on(async {
        let http = http::client(max_connections, MAX_IDLE, tls, opts.ca_cert.as_deref())?;
        let mock = is_mock(&http, &base).await?;
        let keys = keys_for(sc, mock)?;
        let mut reports = Vec::new();
        let mut infos = Vec::new();
        for strategy in &strategies {
            if mock {
                admin(&http, &base, r#"{"action":"reset"}"#).await?;
                if opts.from > 0 {
                    let body = format!(
                        r#"{{"action":"set","to":"{}"}}"#,
                        format_duration(opts.from)
                    );
                    admin(&http, &base, &body).await?;
                }
            }
            let (rep, info, events) = Driver::new(
                sc,
                strategy,
                &base,
                mock,
                http.clone(),
                &keys,
                opts,
                window,
                max_connections,
            )
            .run()
            .await;
            if let Some(dir) = &opts.trace {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                trace::write(&dir.join(format!("{}.trace.jsonl", strategy.name)), &events)?;
            }
            reports.push(rep);
            infos.push(info);
        }
        anyhow::Ok((reports, infos, mock))
    });
    drop(server);
    let (reports, infos, mock) = result?;
    let mut report = crate::sim::assemble(sc, "live", reports);
    report.live = Some(LiveInfo {
        target: if opts.serve {
            "mock-provider (--serve)".into()
        } else {
            base
        },
        mock_provider: mock,
        from_ns: opts.from,
        duration_ns: window,
        max_connections: max_connections as u64,
        strategies: infos,
    });
    Ok(report)
}

/// A GET whose whole answer (head and a body of at most 64 KiB) comes
/// within 5 s, or nothing: a target that streams forever or never answers
/// must not hold the run. A failed TLS handshake is an error: no attempt
/// could get through, and the user can fix it (`--ca-cert`).
async fn get(http: &Http, url: &str) -> anyhow::Result<Option<(u16, Bytes)>> {
    let req = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
    let whole = async {
        let resp = match http.request(req).await {
            Ok(r) => r,
            Err(e) => {
                return match http::tls_error(&e) {
                    Some(why) => Err(anyhow::anyhow!("{url}: {why}")),
                    None => Ok(None),
                }
            }
        };
        let status = resp.status().as_u16();
        let Ok(body) = http_body_util::Limited::new(resp.into_body(), 64 << 10)
            .collect()
            .await
        else {
            return Ok(None);
        };
        Ok(Some((status, body.to_bytes())))
    };
    tokio::time::timeout(Duration::from_secs(5), whole)
        .await
        .unwrap_or(Ok(None))
}

/// Whether the target is our mock provider.
async fn is_mock(http: &Http, base: &str) -> anyhow::Result<bool> {
    Ok(match get(http, &format!("{base}/admin/clock")).await? {
        Some((200, body)) => {
            serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v["now_ns"].is_u64())
        }
        _ => false,
    })
}

async fn admin(http: &Http, base: &str, body: &str) -> anyhow::Result<()> {
    let req = hyper::Request::post(format!("{base}/admin/clock"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = tokio::time::timeout(Duration::from_secs(5), http.request(req))
        .await
        .context("the mock provider's clock did not answer")?
        .context("cannot reach the mock provider's clock")?;
    if !resp.status().is_success() {
        bail!("the mock provider refused {body}: {}", resp.status());
    }
    Ok(())
}

/// The API key of each scenario key: its name for our mock provider, the
/// value of its `env` variable otherwise.
fn keys_for(sc: &Scenario, mock: bool) -> anyhow::Result<Vec<String>> {
    sc.world
        .keys
        .iter()
        .map(|k| {
            if mock {
                return Ok(k.name.clone());
            }
            let Some(var) = &k.env else {
                bail!(
                    "key `{}` has no `env`: against a real endpoint, name the environment variable that holds it (env = \"OPENAI_API_KEY\" in its [[provider.key]])",
                    k.name
                );
            };
            std::env::var(var).with_context(|| {
                format!("key `{}`: environment variable {var} is not set", k.name)
            })
        })
        .collect()
}

/// A live attempt the driver is waiting on.
struct Slot {
    progress: Arc<Progress>,
    task: tokio::task::JoinHandle<()>,
    model: u16,
    key: u16,
    input_tokens: u32,
    measured: bool,
    /// When its first token came (for time per output token).
    first_token: Option<Nanos>,
    /// Since when it has been waiting for a connection (all were busy).
    waiting_since: Option<Nanos>,
}

type Message = (u32, AttemptId, Signal);

struct Driver<'a> {
    sc: &'a Scenario,
    strategy: &'a StrategyConfig,
    base: &'a str,
    mock: bool,
    http: Http,
    keys: &'a [String],
    opts: &'a LiveOptions,
    clients: Vec<Client>,
    senders: Vec<Sender>,
    replicas: u32,
    tally: Tally,
    start: Instant,
    from: Nanos,
    end: Nanos,
    sources: Vec<Source>,
    arrivals: BinaryHeap<Reverse<(Nanos, u32)>>,
    /// Scheduled arrival of each request in flight.
    scheduled: BTreeMap<(u32, u64), Nanos>,
    slots: BTreeMap<(u32, AttemptId), Slot>,
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// One permit per attempt on the wire: at most `--max-connections`.
    conns: Arc<tokio::sync::Semaphore>,
    /// Attempts that found every connection busy, and how long they waited.
    conn_waits: u64,
    conn_wait: hdrhistogram::Histogram<u64>,
    in_flight: u64,
    requests: u64,
    attempts_sent: u64,
    finished: u64,
    succeeded: u64,
    lag: hdrhistogram::Histogram<u64>,
    latency: hdrhistogram::Histogram<u64>,
    max_cost: Option<NanoUsd>,
    stopped: bool,
    last_progress: Instant,
    trace: Option<Vec<trace::Event>>,
    /// Whether attempts stream (the strategy watches first tokens or chunk
    /// gaps, hedges on them, or routes by them).
    stream: bool,
}

impl<'a> Driver<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        sc: &'a Scenario,
        strategy: &'a Arc<StrategyConfig>,
        base: &'a str,
        mock: bool,
        http: Http,
        keys: &'a [String],
        opts: &'a LiveOptions,
        window: Nanos,
        max_connections: usize,
    ) -> Self {
        let (clients, senders) = tally::clients_for(sc, strategy);
        let (tx, rx) = mpsc::unbounded_channel();
        let hist = || {
            hdrhistogram::Histogram::new_with_bounds(1, 3600 * 1_000_000, 3)
                .unwrap_or_else(|_| unreachable!("fixed, valid bounds"))
        };
        Self {
            sc,
            strategy,
            base,
            mock,
            http,
            keys,
            opts,
            clients,
            senders,
            replicas: strategy.clients,
            tally: Tally::new(sc),
            start: Instant::now(),
            from: opts.from,
            end: opts.from + window,
            sources: traffic::sources(sc),
            arrivals: BinaryHeap::new(),
            scheduled: BTreeMap::new(),
            slots: BTreeMap::new(),
            tx,
            rx,
            conns: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            conn_waits: 0,
            conn_wait: hist(),
            in_flight: 0,
            requests: 0,
            attempts_sent: 0,
            finished: 0,
            succeeded: 0,
            lag: hist(),
            latency: hist(),
            max_cost: opts
                .max_cost
                .map(|usd| NanoUsd((usd.max(0.0) * 1e9).min(u64::MAX as f64) as u64)),
            stopped: false,
            last_progress: Instant::now(),
            trace: opts.trace.is_some().then(Vec::new),
            // Latency routing learns from first tokens too: without them
            // it would never move off a slow model.
            stream: strategy.hedge.is_some()
                || matches!(
                    strategy.routing,
                    crate::policy::routing::RoutingConfig::Latency { .. }
                )
                || strategy
                    .timeouts
                    .iter()
                    .any(|t| t.first_token.is_some() || t.between_chunks.is_some()),
        }
    }

    /// Gives client `c` an input (recorded when tracing).
    fn input(&mut self, c: u32, now: Nanos, input: trace::Input) {
        trace::apply(&mut self.clients[c as usize], now, &input);
        if let Some(t) = &mut self.trace {
            t.push(trace::Event::In {
                client: c,
                now,
                input,
            });
        }
    }

    /// Scenario time now.
    fn now(&self) -> Nanos {
        self.from + u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant(&self, t: Nanos) -> tokio::time::Instant {
        tokio::time::Instant::from_std(
            self.start + Duration::from_nanos(t.saturating_sub(self.from)),
        )
    }

    /// Queues the next arrival of source `s` inside the window.
    fn schedule(&mut self, s: u32) {
        let src = &mut self.sources[s as usize];
        while let Some((at, id)) = src.next(self.sc, self.end) {
            if at >= self.from {
                src.pending = Some(id);
                self.arrivals.push(Reverse((at, s)));
                return;
            }
        }
    }

    async fn run(mut self) -> (StrategyReport, LiveStrategyInfo, Vec<trace::Event>) {
        self.start = Instant::now();
        for s in 0..self.sources.len() {
            self.schedule(s as u32);
        }
        loop {
            if self.arrivals.is_empty() && self.in_flight == 0 {
                break;
            }
            let next_arrival = self.arrivals.peek().map(|Reverse((t, _))| *t);
            let next_timer = self
                .clients
                .iter_mut()
                .filter_map(Client::poll_timeout)
                .min();
            let wake = match (next_arrival, next_timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = tokio::time::sleep_until(match wake {
                Some(t) => self.instant(t),
                None => tokio::time::Instant::now() + Duration::from_secs(1),
            });
            tokio::select! {
                biased;
                msg = self.rx.recv() => {
                    if let Some((c, id, sig)) = msg {
                        self.signal(c, id, sig);
                    }
                }
                () = sleep => {}
            }
            let now = self.now();
            while let Some(&Reverse((t, s))) = self.arrivals.peek() {
                if t > now || self.stopped {
                    break;
                }
                self.arrivals.pop();
                self.arrival(now, t, s);
                self.schedule(s);
            }
            if self.stopped {
                self.arrivals.clear();
            }
            for c in 0..self.clients.len() {
                if self.clients[c].poll_timeout().is_some_and(|t| t <= now) {
                    self.input(c as u32, now, trace::Input::Timeout);
                    self.drain(now, c as u32);
                }
            }
            self.progress(false);
        }
        self.progress(true);
        let q = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) * MICROS;
        let info = LiveStrategyInfo {
            name: self.strategy.name.clone(),
            requests: self.requests,
            attempts_sent: self.attempts_sent,
            schedule_lag_p50_ns: q(&self.lag, 0.5),
            schedule_lag_p99_ns: q(&self.lag, 0.99),
            schedule_lag_max_ns: self.lag.max() * MICROS,
            connection_waits: self.conn_waits,
            connection_wait_p99_ns: if self.conn_waits == 0 {
                0
            } else {
                q(&self.conn_wait, 0.99)
            },
            stopped_by_cost_guard: self.stopped,
            spent_usd: self.spent().0 as f64 / 1e9,
        };
        let report = self
            .tally
            .into_report(self.sc, self.strategy, &self.clients, &self.senders);
        (report, info, self.trace.unwrap_or_default())
    }

    fn arrival(&mut self, now: Nanos, scheduled: Nanos, s: u32) {
        let src = &mut self.sources[s as usize];
        let Some(id) = src.pending.take() else { return };
        let (sender, task) = (src.sender, src.task);
        // Sized, timed and given its deadline at its scheduled time.
        let mut req = traffic::request(self.sc, id, scheduled, task);
        req.measured &= sender == Sender::Strategy;
        self.tally.on_arrival(scheduled, sender);
        let c = tally::client_for(sender, id, self.replicas);
        let _ = self.lag.record(((now - scheduled) / MICROS).max(1));
        self.requests += 1;
        self.in_flight += 1;
        self.scheduled.insert((c, id), scheduled);
        self.input(c, now, trace::Input::Request(req));
        self.drain(now, c);
    }

    fn signal(&mut self, c: u32, id: AttemptId, sig: Signal) {
        if !self.slots.contains_key(&(c, id)) {
            // Cancelled already: the core has had its answer.
            return;
        }
        let now = self.now();
        match sig {
            Signal::Connected => {
                if let Some(since) = self
                    .slots
                    .get_mut(&(c, id))
                    .and_then(|s| s.waiting_since.take())
                {
                    let _ = self.conn_wait.record(((now - since) / MICROS).max(1));
                }
                return;
            }
            Signal::FirstToken => {
                if let Some(slot) = self.slots.get_mut(&(c, id)) {
                    slot.first_token = Some(now);
                }
                self.input(c, now, trace::Input::FirstToken(id));
            }
            Signal::Chunk => self.input(c, now, trace::Input::Chunk(id)),
            Signal::Done(outcome, limits) => {
                let Some(slot) = self.slots.remove(&(c, id)) else {
                    return;
                };
                if slot.measured {
                    if let Outcome::Success { output_tokens, .. } = outcome {
                        self.tally
                            .collector
                            .on_answer(slot.first_token, now, output_tokens);
                    }
                    self.tally.on_outcome(now, slot.model, slot.key, &outcome);
                }
                self.input(c, now, trace::Input::Outcome(id, outcome, limits));
                if self.max_cost.is_some_and(|max| self.spent().0 >= max.0) {
                    self.stopped = true;
                }
            }
        }
        self.drain(now, c);
    }

    /// What the run's strategy clients have spent.
    fn spent(&self) -> NanoUsd {
        let mut total = 0u64;
        for (client, s) in self.clients.iter().zip(&self.senders) {
            if *s == Sender::Strategy {
                for m in &client.ledger().all {
                    total = total.saturating_add(m.cost.0);
                }
            }
        }
        NanoUsd(total)
    }

    /// Carries out a client's actions; then, while a fleet concurrency
    /// limit has a place free and its oldest queued request is some
    /// replica's, hands that replica the moment (the contract's "Replicas
    /// that share a queue") and carries out its actions too.
    fn drain(&mut self, now: Nanos, c: u32) {
        self.carry_out(now, c);
        let mut c = c;
        // Each round takes at least the queue's head: bounded by the queue.
        while let Some(r) = self.clients[c as usize].poll_room() {
            self.input(r, now, trace::Input::Room);
            self.carry_out(now, r);
            c = r;
        }
    }

    /// Carries out a client's actions.
    fn carry_out(&mut self, now: Nanos, c: u32) {
        while let Some(a) = self.clients[c as usize].poll_action() {
            if let Some(t) = &mut self.trace {
                t.push(trace::Event::Out {
                    client: c,
                    action: format!("{a:?}"),
                });
            }
            let sender = self.senders[c as usize];
            match a {
                Action::Send { .. } => self.send(now, c, a),
                Action::Cancel { attempt, reason } => self.cancel(now, c, attempt, reason),
                Action::Finish {
                    request,
                    result,
                    arrived,
                    first_token,
                    measured,
                    cost,
                    ..
                } => {
                    self.in_flight -= 1;
                    let scheduled = self.scheduled.remove(&(c, request)).unwrap_or(arrived);
                    self.tally.on_finish(
                        now,
                        sender,
                        (request, scheduled),
                        result,
                        first_token,
                        cost,
                        measured,
                    );
                    if sender == Sender::Strategy {
                        self.finished += 1;
                        if result == RequestResult::Success {
                            self.succeeded += 1;
                        }
                        let _ = self.latency.record(((now - scheduled) / MICROS).max(1));
                    }
                }
                Action::Alert { at, alert } => {
                    if sender == Sender::Strategy {
                        self.tally.collector.on_alert(at, c, alert);
                    }
                }
            }
        }
    }

    fn send(&mut self, now: Nanos, c: u32, a: Action) {
        let Action::Send {
            attempt,
            request,
            task,
            measured,
            model,
            key,
            try_on_model,
            input_tokens,
            max_tokens,
            ..
        } = a
        else {
            return;
        };
        self.tally.on_send(now, self.senders[c as usize], &a);
        self.attempts_sent += 1;
        let world = &self.sc.world;
        let m = &world.models[usize::from(model)];
        let json = self
            .sc
            .traffic
            .tasks
            .get(usize::from(task))
            .is_some_and(|t| t.json);
        let spec = AttemptSpec {
            base: self.base.to_string(),
            style: world.providers[m.provider].style,
            model: m.name.clone(),
            key: self.keys[usize::from(key)].clone(),
            input_tokens,
            max_tokens,
            max_tokens_field: m.max_tokens_field,
            json,
            stream: self.stream,
            draw: self.mock.then(|| {
                format!("request={request};try={try_on_model};task={task};input={input_tokens}")
            }),
        };
        let progress = Arc::new(Progress::default());
        let tx = self.tx.clone();
        let report = move |sig: Signal| {
            let _ = tx.send((c, attempt, sig));
        };
        // A connection for it, or a wait for one: the core's clock for the
        // attempt runs meanwhile, as a client's pool timeout would.
        let permit = Arc::clone(&self.conns).try_acquire_owned().ok();
        let waiting_since = permit.is_none().then_some(now);
        self.conn_waits += u64::from(permit.is_none());
        let conns = Arc::clone(&self.conns);
        let http = self.http.clone();
        let shared = Arc::clone(&progress);
        let task = tokio::spawn(async move {
            let _permit = match permit {
                Some(p) => p,
                None => {
                    // The driver never closes the semaphore.
                    let Ok(p) = conns.acquire_owned().await else {
                        return;
                    };
                    report(Signal::Connected);
                    p
                }
            };
            http::attempt(http, spec, shared, report).await;
        });
        self.slots.insert(
            (c, attempt),
            Slot {
                progress,
                task,
                model,
                key,
                input_tokens,
                measured,
                first_token: None,
                waiting_since,
            },
        );
    }

    /// Stops an attempt and gives the core its answer at once, as the
    /// contract asks: what had arrived by now still bills.
    fn cancel(&mut self, now: Nanos, c: u32, id: AttemptId, reason: CancelReason) {
        let end = AttemptEnd::cancelled(reason);
        let Some(slot) = self.slots.remove(&(c, id)) else {
            return;
        };
        slot.task.abort();
        if let Some(since) = slot.waiting_since {
            let _ = self.conn_wait.record(((now - since) / MICROS).max(1));
        }
        use std::sync::atomic::Ordering;
        let started = slot.progress.started.load(Ordering::Relaxed);
        let outcome = Outcome::Cancelled {
            input_tokens: if started { slot.input_tokens } else { 0 },
            output_tokens: slot.progress.tokens.load(Ordering::Relaxed),
        };
        if slot.measured {
            self.tally.collector.on_attempt_end(now, slot.model, end);
        }
        self.input(
            c,
            now,
            trace::Input::Outcome(id, outcome, RateLimits::default()),
        );
    }

    /// One status line a second on a terminal; nothing otherwise.
    fn progress(&mut self, last: bool) {
        if !self.opts.progress || !std::io::stderr().is_terminal() {
            return;
        }
        if !last && self.last_progress.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_progress = Instant::now();
        let ok = if self.finished == 0 {
            0.0
        } else {
            100.0 * self.succeeded as f64 / self.finished as f64
        };
        let p99 = self.latency.value_at_quantile(0.99) * MICROS;
        let elapsed = self.now() - self.from;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{:<20} {:>7} elapsed  {:>6} sent  {:>5} in flight  {:>6.2}% ok  p99 {:>7}  ${:.4}   ",
            self.strategy.name,
            format_duration(elapsed / SECS * SECS),
            self.requests,
            self.in_flight,
            ok,
            crate::units::format_latency(p99),
            self.spent().0 as f64 / 1e9,
        );
        if last {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_go_without_leave() {
        assert!(check_target("http://127.0.0.1:8080", false, None).is_ok());
        assert!(check_target("http://localhost:8080/", false, None).is_ok());
        assert!(check_target("http://[::1]:8080", false, None).is_ok());
        let e = check_target("http://10.0.0.5:8080", false, None).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        let e = check_target("http://api.example.com", true, None).unwrap_err();
        assert!(e.to_string().contains("--max-cost"), "{e}");
        assert!(check_target("http://api.example.com", true, Some(5.0)).is_ok());
        assert!(check_target("https://api.openai.com", true, Some(5.0)).is_ok());
        assert!(check_target("https://127.0.0.1:8443", false, None).is_ok());
        let e = check_target("https://api.openai.com", false, None).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        let e = check_target("https://api.openai.com", true, None).unwrap_err();
        assert!(e.to_string().contains("--max-cost"), "{e}");
        assert!(check_target("ftp://127.0.0.1:8080", false, None).is_err());
        assert!(check_target("127.0.0.1:8080", false, None).is_err());
    }
}
