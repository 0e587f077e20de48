//! What the server did: Prometheus counters (`GET /metrics`) and one JSON
//! log line per request.
//!
//! Every completion request carries a [`Tracker`] from its arrival until its
//! answer is over (for a stream, until the last byte or the client leaving);
//! dropping the tracker records it, so a request counts once whichever way
//! it ends.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Default)]
struct Hist {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

/// The labels of one counted request (model and key by index, `usize::MAX`
/// when the request never named a valid one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    endpoint: &'static str,
    model: usize,
    key: usize,
    status: u16,
    fault: &'static str,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<Labels, u64>,
    latency: BTreeMap<usize, Hist>,
}

/// The server's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
    in_flight: AtomicI64,
    /// Model names, by index.
    models: Vec<String>,
    /// Keys as shown (redacted), by index.
    keys: Vec<String>,
}

impl Metrics {
    /// Counters for these models and keys (names as they are to be shown).
    pub(crate) fn new(models: Vec<String>, keys: Vec<String>) -> Self {
        Self {
            models,
            keys,
            ..Self::default()
        }
    }

    fn name(names: &[String], i: usize) -> &str {
        names.get(i).map_or("", String::as_str)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let inner = self.inner();
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP mock_provider_requests_total Completion requests answered, by endpoint, model, key (redacted), status and fault.\n\
             # TYPE mock_provider_requests_total counter\n",
        );
        for (l, n) in &inner.requests {
            let _ = writeln!(
                out,
                "mock_provider_requests_total{{endpoint=\"{}\",model=\"{}\",key=\"{}\",status=\"{}\",fault=\"{}\"}} {n}",
                l.endpoint,
                escape(Self::name(&self.models, l.model)),
                escape(Self::name(&self.keys, l.key)),
                l.status,
                l.fault
            );
        }
        out.push_str(
            "# HELP mock_provider_request_duration_seconds Time from a request's arrival to the end of its answer, by model.\n\
             # TYPE mock_provider_request_duration_seconds histogram\n",
        );
        for (model, h) in &inner.latency {
            let model = escape(Self::name(&self.models, *model));
            let mut cum = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cum += h.counts[i];
                let _ = writeln!(
                    out,
                    "mock_provider_request_duration_seconds_bucket{{model=\"{model}\",le=\"{le}\"}} {cum}"
                );
            }
            cum += h.counts[BUCKETS.len()];
            let _ = writeln!(
                out,
                "mock_provider_request_duration_seconds_bucket{{model=\"{model}\",le=\"+Inf\"}} {cum}\n\
                 mock_provider_request_duration_seconds_sum{{model=\"{model}\"}} {}\n\
                 mock_provider_request_duration_seconds_count{{model=\"{model}\"}} {cum}",
                h.sum
            );
        }
        let _ = write!(
            out,
            "# HELP mock_provider_in_flight Completion requests being answered now.\n\
             # TYPE mock_provider_in_flight gauge\n\
             mock_provider_in_flight {}\n",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A key as logs and metrics show it: never the whole of it.
pub(crate) fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "****".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

/// Log lines waiting to be written, at most this many bytes; beyond, lines
/// are counted and dropped rather than held.
const LOG_BUFFER: usize = 16 << 20;

#[derive(Default)]
struct LogBuf {
    text: Mutex<String>,
    dropped: AtomicU64,
}

/// Collects log lines in a buffer that a thread of its own writes out every
/// 50 ms: a request never waits for the terminal, and no request wakes a
/// thread (a channel that woke the writer per line cost half the server's
/// throughput in context switches).
#[derive(Clone, Default)]
pub(crate) struct Logger {
    buf: Arc<LogBuf>,
}

impl Logger {
    /// A logger writing to standard error.
    pub(crate) fn stderr() -> Self {
        let logger = Self::default();
        let writer = logger.clone();
        // Without a thread, lines pile up to the bound and are then
        // dropped: better than failing requests.
        let _ = std::thread::Builder::new()
            .name("mock-provider-log".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(50));
                writer.flush();
            });
        logger
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&self) {
        let text = std::mem::take(&mut *self.lock());
        let dropped = self.buf.dropped.swap(0, Ordering::Relaxed);
        if text.is_empty() && dropped == 0 {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if dropped > 0 {
            let _ = writeln!(
                err,
                "{{\"dropped_log_lines\":{dropped},\"why\":\"stderr could not keep up\"}}"
            );
        }
        let _ = err.flush();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        self.buf.text.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn take(&self) -> String {
        std::mem::take(&mut *self.lock())
    }
}

/// One request, from arrival to the end of its answer (see the module docs).
pub(crate) struct Tracker {
    metrics: Arc<Metrics>,
    logger: Option<Logger>,
    start: Instant,
    /// Scenario time of arrival, in ms.
    pub(crate) at_ms: u64,
    pub(crate) endpoint: &'static str,
    pub(crate) model: Option<usize>,
    pub(crate) key: Option<usize>,
    pub(crate) status: u16,
    pub(crate) fault: &'static str,
    pub(crate) stream: bool,
    pub(crate) prompt_tokens: u32,
    pub(crate) completion_tokens: u32,
    pub(crate) draw: Option<(u64, u64)>,
    /// The retry number the client says this is (`x-stainless-retry-count`,
    /// sent by the official OpenAI and Anthropic SDKs).
    pub(crate) client_retry: Option<u32>,
    pub(crate) complete: bool,
}

impl Tracker {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        logger: Option<Logger>,
        endpoint: &'static str,
    ) -> Self {
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            metrics,
            logger,
            start: Instant::now(),
            at_ms: 0,
            endpoint,
            model: None,
            key: None,
            status: 0,
            fault: "none",
            stream: false,
            prompt_tokens: 0,
            completion_tokens: 0,
            draw: None,
            client_retry: None,
            complete: false,
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        {
            let mut inner = self.metrics.inner();
            let labels = Labels {
                endpoint: self.endpoint,
                model: self.model.unwrap_or(usize::MAX),
                key: self.key.unwrap_or(usize::MAX),
                status: self.status,
                fault: self.fault,
            };
            *inner.requests.entry(labels).or_insert(0) += 1;
            if let Some(model) = self.model {
                let h = inner.latency.entry(model).or_default();
                let i = BUCKETS
                    .iter()
                    .position(|b| secs <= *b)
                    .unwrap_or(BUCKETS.len());
                h.counts[i] += 1;
                h.sum += secs;
            }
        }
        if let Some(logger) = &self.logger {
            // Written by hand, not through a JSON tree: a log line per
            // request halved the server's throughput that way. Names are
            // the scenario's and already-redacted keys, escaped as JSON.
            let name = |names: &[String], i: Option<usize>| {
                i.map_or("null".to_string(), |i| {
                    serde_json::Value::from(Metrics::name(names, i)).to_string()
                })
            };
            let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
            let draw = self.draw.map_or("null".to_string(), |(r, t)| {
                format!("\"request={r};try={t}\"")
            });
            let mut line = logger.lock();
            if line.len() > LOG_BUFFER {
                logger.buf.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let _ = writeln!(
                line,
                "{{\"at_ms\":{},\"endpoint\":\"{}\",\"model\":{},\"key\":{},\"status\":{},\
                 \"fault\":\"{}\",\"stream\":{},\"complete\":{},\"prompt_tokens\":{},\
                 \"completion_tokens\":{},\"draw\":{},\"client_retry\":{},\"duration_ms\":{:.3}}}",
                self.at_ms,
                self.endpoint,
                name(&self.metrics.models, self.model),
                name(&self.metrics.keys, self.key),
                self.status,
                self.fault,
                self.stream,
                self.complete,
                self.prompt_tokens,
                self.completion_tokens,
                draw,
                opt(self.client_retry.map(u64::from)),
                secs * 1e3,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted() {
        assert_eq!(redact("short"), "****");
        assert_eq!(redact("sk-proj-0123456789abcdef"), "sk-...cdef");
        assert!(!redact("sk-proj-0123456789abcdef").contains("0123456789"));
    }

    #[test]
    fn a_log_line_is_one_json_object() {
        let m = Arc::new(Metrics::new(vec!["gpt \"4\"".into()], vec!["****".into()]));
        let logger = Logger::default();
        {
            let mut t = Tracker::new(Arc::clone(&m), Some(logger.clone()), "messages");
            t.model = Some(0);
            t.draw = Some((3, 1));
            t.client_retry = Some(2);
        }
        let text = logger.take();
        let line = text.strip_suffix('\n').expect("one line");
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(v["model"], "gpt \"4\"");
        assert!(v["key"].is_null());
        assert_eq!(v["draw"], "request=3;try=1");
        assert_eq!(v["client_retry"], 2);
        assert_eq!(v["endpoint"], "messages");
        assert!(v["duration_ms"].is_number());
    }

    #[test]
    fn a_tracker_counts_once_when_dropped() {
        let m = Arc::new(Metrics::new(vec!["m".into()], vec!["****".into()]));
        {
            let mut t = Tracker::new(Arc::clone(&m), None, "chat");
            t.model = Some(0);
            t.key = Some(0);
            t.status = 429;
            t.fault = "rate_limit";
            assert!(m.render().contains("mock_provider_in_flight 1"));
        }
        let text = m.render();
        assert!(text.contains(
            "mock_provider_requests_total{endpoint=\"chat\",model=\"m\",key=\"****\",status=\"429\",fault=\"rate_limit\"} 1"
        ));
        assert!(text.contains("mock_provider_request_duration_seconds_count{model=\"m\"} 1"));
        assert!(text.contains("mock_provider_in_flight 0"));
    }
}
