//! Semantic checks and resolution: names become indices, defaults are filled
//! in, and every cross-reference is checked where it is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::Spanned;

use crate::dist::LogNormal;
use crate::policy::breaker::BreakerConfig;
use crate::policy::config::{LayerConfig, MAX_LAYERS};
use crate::policy::fallback::MAX_CHAIN;
use crate::policy::retry::BudgetConfig;
use crate::policy::routing::{tier_bits, RoutingConfig};
use crate::policy::{
    Backoff, Classifier, Disposition, FailureClass, ModelInfo, RetryConfig, StrategyConfig, Tier,
    Timeouts,
};
use crate::units::{pico_per_token, Nanos, MILLIS, SECS};
use crate::wire::{BodyKind, MaxTokensField};
use crate::world::config::{
    ApiStyle, Effect, FaultRates, IncidentSpec, KeySpec, ModelSpec, PoolSpec, ProviderSpec, Target,
    WorldConfig,
};

use super::error::{known_hint, ScenarioError};
use super::load::{FileId, Merged, Sources};
use super::preset::PresetTimeout;
use super::schema::{BackoffKind, IncidentKind, MalformedKind, StrategySection, TimeoutSet};
use super::traffic::{RunawaySpec, TaskSpec, TenantSpec, TrafficSpec};
use super::Scenario;

type R<T> = Result<T, ScenarioError>;

/// Largest latency or slow-tail factor (beyond it, model an outage).
const MAX_FACTOR: f64 = 1000.0;
/// Most replicas of one strategy (each holds its own timer ring).
const MAX_CLIENTS: u32 = 1024;
/// Most retries per model.
const MAX_RETRIES: u32 = 100;
/// Longest sliding window of a budget, breaker or throttle.
const MAX_WINDOW: Nanos = 600 * SECS;

fn body_kind(k: MalformedKind) -> BodyKind {
    match k {
        MalformedKind::Fenced => BodyKind::Fenced,
        MalformedKind::Truncated => BodyKind::Truncated,
        MalformedKind::MissingFields => BodyKind::MissingFields,
        MalformedKind::PlainText => BodyKind::PlainText,
    }
}

fn name_hash(s: &str) -> u64 {
    // FNV-1a: stable across platforms and versions.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

struct Names {
    models: BTreeMap<String, usize>,
    providers: BTreeMap<String, usize>,
    keys: BTreeMap<String, usize>,
    pools: BTreeMap<String, usize>,
    tasks: BTreeMap<String, usize>,
}

fn lookup(
    src: &Sources,
    file: FileId,
    map: &BTreeMap<String, usize>,
    what: &str,
    name: &Spanned<String>,
) -> R<usize> {
    map.get(name.get_ref().as_str()).copied().ok_or_else(|| {
        src.error_at(file, name, format!("unknown {what} `{}`", name.get_ref()))
            .hint(known_hint(
                &format!("{what}s defined"),
                name.get_ref(),
                map.keys().map(String::as_str),
            ))
    })
}

/// Where `key` is written: the first line that starts with it (so that a
/// mention in a comment is not taken for it), or else its first occurrence.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with(key) {
            return Some(offset + line.len() - t.len());
        }
        offset += line.len();
    }
    text.find(key)
}

/// Resolves merged files into a runnable scenario.
pub(super) fn resolve(src: &Sources, m: Merged, default_name: &str) -> R<Scenario> {
    let main = &src.files[0].0;
    let Some((_, run)) = &m.run else {
        return Err(ScenarioError::file(main, "missing [run] section")
            .hint("add [run] with at least `duration = \"10m\"`"));
    };
    let seed = run.seed;
    let duration = run.duration.0;
    let warmup = run.warmup.0;
    if warmup >= duration {
        let (f, _) = m.run.as_ref().map_or((0, ()), |(f, _)| (*f, ()));
        let (path, text) = &src.files[f];
        let at = key_line(text, "warmup").unwrap_or(0);
        return Err(
            ScenarioError::at(path, text, at..at, "warmup is not shorter than duration")
                .hint("warm-up requests are left out of the figures; leave some run after it"),
        );
    }

    // Providers, pools, keys, models.
    let mut world = WorldConfig {
        seed,
        providers: Vec::new(),
        models: Vec::new(),
        pools: Vec::new(),
        keys: Vec::new(),
        incidents: Vec::new(),
    };
    let mut names = Names {
        models: BTreeMap::new(),
        providers: BTreeMap::new(),
        keys: BTreeMap::new(),
        pools: BTreeMap::new(),
        tasks: BTreeMap::new(),
    };
    let mut pool_at: Vec<(FileId, std::ops::Range<usize>)> = Vec::new();
    for (file, p) in &m.providers {
        let file = *file;
        let pi = world.providers.len();
        let pv = p.get_ref();
        if names.providers.insert(pv.name.clone(), pi).is_some() {
            return Err(src
                .error_at(file, p, format!("provider `{}` is defined twice", pv.name))
                .hint("provider names must be unique across the file and its includes"));
        }
        world.providers.push(ProviderSpec {
            name: pv.name.clone(),
            style: pv.style,
            cancel_on_disconnect: pv.cancel_on_disconnect,
            error_latency: pv.error_latency.map_or(50 * MILLIS, |d| d.0),
        });
        let mut local_pools: BTreeMap<String, usize> = BTreeMap::new();
        for pool in &pv.pool {
            let pl = pool.get_ref();
            let idx = world.pools.len();
            if local_pools.insert(pl.name.clone(), idx).is_some() {
                return Err(src.error_at(
                    file,
                    pool,
                    format!(
                        "pool `{}` is defined twice in provider `{}`",
                        pl.name, pv.name
                    ),
                ));
            }
            if pl.rpm.is_none() && pl.tpm.is_none() && pl.itpm.is_none() && pl.otpm.is_none() {
                return Err(src.error_at(file, pool, format!("pool `{}` sets no limit", pl.name))
                    .hint("give at least one of rpm, tpm (OpenAI style), itpm and otpm (Anthropic style)"));
            }
            let burst = pl.burst.map_or(60 * SECS, |b| b.0);
            pool_at.push((file, pool.span()));
            if let Some(rpm) = pl.rpm {
                if rpm.0 * (burst as f64) / ((60 * SECS) as f64) < 1.0 {
                    return Err(src
                        .error_at(file, pool, format!(
                            "pool `{}` holds less than one request: rpm {} with a burst of {}",
                            pl.name, rpm.0, crate::units::format_duration(burst)
                        ))
                        .hint("the bucket holds rpm x burst / 60s requests; raise rpm or lengthen burst"));
                }
            }
            let full = format!("{}/{}", pv.name, pl.name);
            names.pools.insert(full.clone(), idx);
            names.pools.entry(pl.name.clone()).or_insert(idx);
            world.pools.push(PoolSpec {
                name: full,
                provider: pi,
                rpm: pl.rpm.map(|x| x.0),
                tpm: pl.tpm.map(|x| x.0),
                itpm: pl.itpm.map(|x| x.0),
                otpm: pl.otpm.map(|x| x.0),
                burst,
                count_rejected: pl.count_rejected,
            });
        }
        let mut provider_keys = 0;
        for key in &pv.key {
            let k = key.get_ref();
            let pool = match &k.pool {
                None => None,
                Some(name) => Some(local_pools.get(name.get_ref()).copied().ok_or_else(|| {
                    src.error_at(
                        file,
                        name,
                        format!(
                            "key `{}` points at pool `{}`, which provider `{}` does not have",
                            k.name,
                            name.get_ref(),
                            pv.name
                        ),
                    )
                    .hint(known_hint(
                        "pools of this provider",
                        name.get_ref(),
                        local_pools.keys().map(String::as_str),
                    ))
                })?),
            };
            if names
                .keys
                .insert(k.name.clone(), world.keys.len())
                .is_some()
            {
                return Err(src.error_at(file, key, format!("key `{}` is defined twice", k.name)));
            }
            world.keys.push(KeySpec {
                name: k.name.clone(),
                provider: pi,
                pool,
                revoked_at: k.revoked_at.map(|d| d.0),
                env: k.env.clone(),
            });
            provider_keys += 1;
        }
        if provider_keys == 0 {
            let name = format!("{}-key", pv.name);
            names.keys.insert(name.clone(), world.keys.len());
            world.keys.push(KeySpec {
                name,
                provider: pi,
                pool: None,
                revoked_at: None,
                env: None,
            });
        }
        if pv.model.is_empty() {
            return Err(src
                .error_at(file, p, format!("provider `{}` has no models", pv.name))
                .hint("add [[provider.model]] with a name and prices"));
        }
        for model in &pv.model {
            let md = model.get_ref();
            if names
                .models
                .insert(md.name.clone(), world.models.len())
                .is_some()
            {
                return Err(src
                    .error_at(file, model, format!("model `{}` is defined twice", md.name))
                    .hint("model names must be unique across providers"));
            }
            let price = m.prices.get(&md.name);
            let pin = md
                .input_per_mtok
                .map(|x| x.0)
                .or(price.map(|p| p.input_per_mtok.0));
            let pout = md
                .output_per_mtok
                .map(|x| x.0)
                .or(price.map(|p| p.output_per_mtok.0));
            let (Some(pin), Some(pout)) = (pin, pout) else {
                return Err(src.error_at(file, model, format!("model `{}` has no price", md.name))
                    .hint("give input_per_mtok and output_per_mtok, or add the model to [prices] (e.g. in an included catalogue)"));
            };
            let ttft = md.ttft.map_or((500.0 * 1e6, 2000.0 * 1e6), |d| {
                (d.median.0 as f64, d.p99.0 as f64)
            });
            let tps = md.tokens_per_s.map_or((60.0, 20.0), |d| (d.median, d.p1));
            let cap = md.capacity.unwrap_or(super::schema::Capacity {
                slots: 1000,
                queue: 1000,
            });
            if cap.slots == 0 {
                return Err(src
                    .error_at(file, model, format!("model `{}` has zero slots", md.name))
                    .hint("capacity.slots is how many requests it serves at once; at least 1"));
            }
            let f = md.faults;
            let faults = FaultRates {
                error_500: f.error_500.0,
                hang: f.hang.0,
                reset: f.reset.0,
                broken_stream: f.broken_stream.0,
                stall: f.stall.0,
                malformed: [
                    (BodyKind::Fenced, f.malformed_fenced.0),
                    (BodyKind::Truncated, f.malformed_truncated.0),
                    (BodyKind::MissingFields, f.malformed_missing_fields.0),
                    (BodyKind::PlainText, f.malformed_plain_text.0),
                ],
            };
            let total = faults.error_500
                + faults.hang
                + faults.reset
                + faults.broken_stream
                + faults.stall
                + faults.malformed.iter().map(|x| x.1).sum::<f64>();
            if total > 1.0 {
                return Err(src.error_at(file, model, format!(
                    "the fault rates of model `{}` add up to {total}, more than 1", md.name
                ))
                .hint("each fault rate is the probability that an attempt meets that fault; together at most 1"));
            }
            let (slow_p, slow_factor) = md
                .slow_tail
                .map_or((0.0, 1.0), |s| (s.probability.0, s.factor.0));
            if !(1.0..=MAX_FACTOR).contains(&slow_factor) {
                return Err(src
                    .error_at(
                        file,
                        model,
                        format!(
                            "model `{}`: slow_tail.factor {slow_factor} is outside 1..{MAX_FACTOR}",
                            md.name
                        ),
                    )
                    .hint("the factor is how many times slower a slow attempt is"));
            }
            let max_tokens_field = md
                .max_tokens_field
                .or(pv.max_tokens_field)
                .unwrap_or_default();
            if pv.style == ApiStyle::Anthropic
                && max_tokens_field == MaxTokensField::MaxCompletionTokens
            {
                return Err(src
                    .error_at(
                        file,
                        model,
                        format!(
                            "model `{}`: max_tokens_field = \"max_completion_tokens\" on an Anthropic provider",
                            md.name
                        ),
                    )
                    .hint("Anthropic's Messages API takes only max_tokens; max_completion_tokens is for OpenAI's reasoning models"));
            }
            world.models.push(ModelSpec {
                max_tokens_field,
                name: md.name.clone(),
                provider: pi,
                price_in: pico_per_token(pin),
                price_out: pico_per_token(pout),
                ttft: LogNormal::from_median_p99(ttft.0, ttft.1),
                tps: LogNormal::from_median_p1(tps.0, tps.1),
                slow_p,
                slow_factor,
                occupancy_slowdown: md.occupancy_slowdown.0,
                slots: cap.slots,
                queue: cap.queue,
                faults,
            });
        }
    }
    if world.models.is_empty() {
        return Err(ScenarioError::file(main, "no models are defined")
            .hint("add a [[provider]] with at least one [[provider.model]]"));
    }

    // Incidents.
    for (file, inc) in &m.incidents {
        let file = *file;
        let i = inc.get_ref();
        let kind_name = serde_json::to_value(i.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let targets = [i.model.is_some(), i.provider.is_some(), i.pool.is_some()]
            .iter()
            .filter(|&&x| x)
            .count();
        if targets != 1 {
            return Err(src
                .error_at(file, inc, "an incident needs exactly one target")
                .hint("give one of `model`, `provider` or `pool`"));
        }
        let target = if let Some(mn) = &i.model {
            Target::Model(lookup(src, file, &names.models, "model", mn)?)
        } else if let Some(pn) = &i.provider {
            Target::Provider(lookup(src, file, &names.providers, "provider", pn)?)
        } else if let Some(pl) = &i.pool {
            Target::Pool(lookup(src, file, &names.pools, "pool", pl)?)
        } else {
            unreachable!("exactly one target was checked above")
        };
        if matches!(target, Target::Pool(_)) && i.kind != IncidentKind::QuotaCut {
            return Err(src
                .error_at(
                    file,
                    inc,
                    format!("a `{kind_name}` incident hits a `model` or a `provider`, not a pool"),
                )
                .hint("only a `quota_cut` targets a quota pool"));
        }
        let need = |what: &str, present: bool| -> R<()> {
            if present {
                Ok(())
            } else {
                Err(src.error_at(
                    file,
                    inc,
                    format!("a `{kind_name}` incident needs `{what}`"),
                ))
            }
        };
        let applies: &[&str] = match i.kind {
            IncidentKind::Outage => &["mode"],
            IncidentKind::ErrorSpike => &["rate", "status"],
            IncidentKind::Latency | IncidentKind::CapacityCut | IncidentKind::QuotaCut => {
                &["factor"]
            }
            IncidentKind::MalformedBurst => &["rate", "malformed"],
        };
        let given = [
            ("mode", i.mode.is_some(), applies.contains(&"mode")),
            ("rate", i.rate.is_some(), applies.contains(&"rate")),
            ("status", i.status.is_some(), applies.contains(&"status")),
            ("factor", i.factor.is_some(), applies.contains(&"factor")),
            (
                "malformed",
                i.malformed.is_some(),
                applies.contains(&"malformed"),
            ),
        ];
        refuse_keys(
            src,
            file,
            inc,
            &given,
            |key| format!("`{key}` does not apply to a `{kind_name}` incident"),
            "incident",
        )?;
        let factor = i.factor.map(|f| f.0);
        let effect = match i.kind {
            IncidentKind::Outage => Effect::Outage(i.mode.unwrap_or_default()),
            IncidentKind::ErrorSpike => {
                need("rate", i.rate.is_some())?;
                let status = i.status.unwrap_or(500);
                if !(400..=599).contains(&status) {
                    return Err(src
                        .error_at(file, inc, format!("status {status} is not an error status"))
                        .hint("use a 4xx or 5xx status, e.g. 500, 502, 503"));
                }
                Effect::ErrorSpike {
                    rate: i.rate.map_or(0.0, |r| r.0),
                    status,
                }
            }
            IncidentKind::Latency => {
                need("factor", factor.is_some())?;
                let f = factor.unwrap_or(1.0);
                if f < 1.0 {
                    return Err(src
                        .error_at(
                            file,
                            inc,
                            format!("a latency factor of {f} would speed the provider up"),
                        )
                        .hint("factor is how many times slower, at least 1"));
                }
                if f > MAX_FACTOR {
                    return Err(src
                        .error_at(file, inc, format!("a latency factor of {f} is beyond {MAX_FACTOR}"))
                        .hint("to model a provider that stops answering, use an outage with mode = \"blackhole\""));
                }
                Effect::Latency(f)
            }
            IncidentKind::CapacityCut | IncidentKind::QuotaCut => {
                need("factor", factor.is_some())?;
                let f = factor.unwrap_or(1.0);
                if f > 1.0 {
                    return Err(src.error_at(file, inc, format!("a cut to a factor of {f} would add capacity"))
                        .hint("factor is the fraction left during the incident, 0..1 (0.25 keeps a quarter)"));
                }
                if i.kind == IncidentKind::QuotaCut {
                    if matches!(target, Target::Model(_)) {
                        return Err(src.error_at(
                            file,
                            inc,
                            "a quota cut hits a `pool` or a `provider`, not a model",
                        ));
                    }
                    Effect::QuotaCut(f)
                } else {
                    Effect::CapacityCut(f)
                }
            }
            IncidentKind::MalformedBurst => {
                need("rate", i.rate.is_some())?;
                Effect::MalformedBurst {
                    rate: i.rate.map_or(0.0, |r| r.0),
                    kind: body_kind(i.malformed.unwrap_or(MalformedKind::Truncated)),
                }
            }
        };
        let start = i.start.0;
        world.incidents.push(IncidentSpec {
            name: i
                .name
                .clone()
                .unwrap_or_else(|| format!("{kind_name}@{}", crate::units::format_duration(start))),
            start,
            end: start + i.duration.0,
            target,
            effect,
        });
    }

    // Traffic.
    let Some((tfile, t)) = &m.traffic else {
        return Err(ScenarioError::file(main, "missing [traffic] section")
            .hint("add [traffic] with a `rate` and at least one [[traffic.task]]"));
    };
    let tfile = *tfile;
    let (tpath, ttext) = &src.files[tfile];
    let traffic_at = |msg: &str| {
        let at = key_line(ttext, "[traffic]").unwrap_or(0);
        ScenarioError::at(tpath, ttext, at..at, msg)
    };
    let profile: Vec<(Nanos, f64)> = match (&t.rate, t.profile.is_empty()) {
        (Some(_), false) => {
            return Err(traffic_at("[traffic] gives both `rate` and `profile`")
                .hint("use `rate` for a steady Poisson rate, or `profile` for a curve, not both"))
        }
        (None, true) => {
            return Err(traffic_at("[traffic] gives no arrival rate")
                .hint("add `rate = 50` (requests per second) or a `profile`"))
        }
        (Some(r), true) => vec![(0, r.0)],
        (None, false) => {
            let mut v = Vec::new();
            for p in &t.profile {
                let pt = p.get_ref();
                if v.last().is_some_and(|&(at, _)| pt.at.0 <= at) {
                    return Err(src.error_at(
                        tfile,
                        p,
                        "profile points must be in increasing time order",
                    ));
                }
                v.push((pt.at.0, pt.rate.0));
            }
            v
        }
    };
    let default_deadline = t.deadline.map_or(60 * SECS, |d| d.0);
    if t.task.is_empty() {
        return Err(traffic_at("[traffic] has no tasks")
            .hint("add at least one [[traffic.task]] with name, input_tokens and output_tokens"));
    }
    let mut tasks = Vec::new();
    for task in &t.task {
        let tk = task.get_ref();
        if names.tasks.insert(tk.name.clone(), tasks.len()).is_some() {
            return Err(src.error_at(tfile, task, format!("task `{}` is defined twice", tk.name)));
        }
        let max_tokens = tk.max_tokens.unwrap_or(4096);
        if max_tokens == 0 {
            return Err(src.error_at(tfile, task, "max_tokens must be at least 1"));
        }
        tasks.push(TaskSpec {
            name: tk.name.clone(),
            weight: tk.weight.map_or(1.0, |w| w.0),
            input: LogNormal::from_median_p99(tk.input_tokens.median, tk.input_tokens.p99),
            output: LogNormal::from_median_p99(tk.output_tokens.median, tk.output_tokens.p99),
            max_tokens,
            tier: tk.tier,
            json: tk.json,
            deadline: tk.deadline.map_or(default_deadline, |d| d.0),
        });
    }
    if tasks.iter().all(|t| t.weight == 0.0) {
        return Err(
            traffic_at("every task has weight 0").hint("give at least one task a positive weight")
        );
    }
    // Every task's smallest request (one prompt token plus max_tokens) must
    // fit in every token bucket, or no request of it can ever be admitted.
    for (pi, pool) in world.pools.iter().enumerate() {
        let depth =
            |per_min: Option<f64>| per_min.map(|l| l * pool.burst as f64 / (60 * SECS) as f64);
        for task in &tasks {
            let need = [
                (depth(pool.tpm), f64::from(task.max_tokens) + 1.0, "tpm"),
                (depth(pool.otpm), f64::from(task.max_tokens), "otpm"),
            ];
            for (d, amount, what) in need {
                if let Some(d) = d.filter(|&d| d < amount) {
                    let (f, span) = pool_at[pi].clone();
                    return Err(src
                        .error(f, span, format!(
                            "pool `{}` can never admit a `{}` request: its {what} bucket holds {d:.0} tokens, a request needs at least {amount:.0}",
                            pool.name, task.name
                        ))
                        .hint("OpenAI-style limits count max_tokens at admission; raise the limit, lengthen burst, or lower the task's max_tokens"));
                }
            }
        }
    }
    let mut runaways = Vec::new();
    for r in &t.runaway {
        let rv = r.get_ref();
        let task = lookup(src, tfile, &names.tasks, "task", &rv.task)?;
        let end = rv.end.map_or(duration, |e| e.0);
        if end <= rv.start.0 {
            return Err(src.error_at(tfile, r, "a runaway loop must end after it starts"));
        }
        runaways.push(RunawaySpec {
            rate: rv.rate.0,
            task,
            start: rv.start.0,
            end,
        });
    }

    // Strategies.
    let mut strategies = Vec::new();
    let mut seen = BTreeMap::new();
    for (file, s) in &m.strategies {
        let sv = s.get_ref();
        if seen.insert(sv.name.clone(), ()).is_some() {
            return Err(src.error_at(*file, s, format!("strategy `{}` is defined twice", sv.name)));
        }
        strategies.push(Arc::new(strategy(
            src, *file, s, &names, &world, &tasks, seed,
        )?));
    }
    if strategies.is_empty() {
        return Err(ScenarioError::file(main, "no strategies to compare")
            .hint("add at least one [[strategy]] with a name and [strategy.routing] default = \"<model>\""));
    }

    // Tenants get the SDK defaults on their own model and key.
    let mut tenants = Vec::new();
    let mut tenant_strategies = Vec::new();
    for tn in &t.tenant {
        let tv = tn.get_ref();
        let model = lookup(src, tfile, &names.models, "model", &tv.model)?;
        let key = lookup(src, tfile, &names.keys, "key", &tv.key)?;
        if world.keys[key].provider != world.models[model].provider {
            return Err(src.error_at(
                tfile,
                &tv.key,
                format!(
                    "key `{}` belongs to provider `{}`, but model `{}` is served by `{}`",
                    tv.key.get_ref(),
                    world.providers[world.keys[key].provider].name,
                    tv.model.get_ref(),
                    world.providers[world.models[model].provider].name
                ),
            ));
        }
        let task = match &tv.task {
            Some(tk) => lookup(src, tfile, &names.tasks, "task", tk)?,
            None => 0,
        };
        let mut models = model_infos(&world, &BTreeMap::new());
        models[model].keys = vec![key as u16];
        tenant_strategies.push(Arc::new(StrategyConfig {
            name: format!("tenant:{}", tv.name),
            clients: 1,
            seed: seed ^ name_hash(&format!("tenant:{}", tv.name)),
            models,
            retry: sdk_retry(),
            timeouts: [Timeouts::default(); 3],
            min_attempt_time: 0,
            routing: RoutingConfig::Static,
            route_by_task: Vec::new(),
            default_model: model as u16,
            chains: [Vec::new(), Vec::new(), Vec::new()],
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
        }));
        tenants.push(TenantSpec {
            name: tv.name.clone(),
            rate: tv.rate.0,
            task,
        });
    }

    let bursts = t
        .burst
        .iter()
        .map(|b| {
            let bv = b.get_ref();
            (bv.at.0, bv.requests, bv.over.0)
        })
        .collect();

    let name = run.name.clone().unwrap_or_else(|| default_name.to_owned());
    let slo = super::judge::slo(src, m.slo.as_ref())?;
    let strategy_names: Vec<String> = strategies.iter().map(|s| s.name.clone()).collect();
    let expect = super::judge::expect(src, &m.expect, &strategy_names, slo.is_some())?;
    Ok(Scenario {
        name,
        path: main.clone(),
        seed,
        duration,
        warmup,
        world: Arc::new(world),
        traffic: TrafficSpec {
            profile,
            bursts,
            tasks,
            runaways,
            tenants,
        },
        strategies,
        tenant_strategies,
        slo,
        expect,
        resolved: serde_json::Value::Null,
    })
}

fn sdk_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 2,
        backoff: Backoff::FullJitter {
            base: 500 * MILLIS,
            cap: 8 * SECS,
        },
        honor_retry_after: true,
        max_retry_after: 60 * SECS,
        honor_should_retry: true,
        too_long_retry_after: crate::policy::TooLongRetryAfter::GiveUp,
        max_elapsed: None,
        retry_after_replaces_backoff: false,
        retry_after_keeps_step: false,
    }
}

fn model_infos(
    world: &WorldConfig,
    keys_by_provider: &BTreeMap<usize, Vec<u16>>,
) -> Vec<ModelInfo> {
    world
        .models
        .iter()
        .map(|md| ModelInfo {
            name: md.name.clone(),
            price_in: md.price_in,
            price_out: md.price_out,
            provider: md.provider as u16,
            keys: keys_by_provider
                .get(&md.provider)
                .cloned()
                .unwrap_or_else(|| {
                    world
                        .keys
                        .iter()
                        .enumerate()
                        .filter(|(_, k)| k.provider == md.provider)
                        .map(|(i, _)| i as u16)
                        .collect()
                }),
        })
        .collect()
}

fn timeouts(base: Timeouts, set: Option<&TimeoutSet>) -> Timeouts {
    match set {
        None => base,
        Some(s) => base.overlay(Timeouts {
            first_token: s.first_token.map(|d| d.0),
            between_chunks: s.between_chunks.map(|d| d.0),
            total: s.total.map(|d| d.0),
        }),
    }
}

fn strategy(
    src: &Sources,
    file: FileId,
    s: &Spanned<StrategySection>,
    names: &Names,
    world: &WorldConfig,
    tasks: &[TaskSpec],
    seed: u64,
) -> R<StrategyConfig> {
    let sv = s.get_ref();
    let clients = sv.clients.unwrap_or(1);
    if clients == 0 || clients > MAX_CLIENTS {
        return Err(src
            .error_at(
                file,
                s,
                format!("strategy `{}` has clients = {clients}", sv.name),
            )
            .hint(format!(
                "clients is how many replicas run the strategy: 1 to {MAX_CLIENTS}"
            )));
    }
    let preset = find_preset(src, file, sv.preset.as_ref())?;
    let who = format!("strategy `{}`", sv.name);
    let retry = retry_config(src, file, s.span(), &who, preset, &sv.retry)?;
    let model =
        |n: &Spanned<String>| lookup(src, file, &names.models, "model", n).map(|i| i as u16);

    if let Some(min) = sv.timeouts.min_attempt_time {
        let shortest = tasks.iter().map(|t| t.deadline).min().unwrap_or(u64::MAX);
        if min.0 >= shortest {
            return Err(src
                .error_at(file, s, format!(
                    "strategy `{}`: min_attempt_time {} is not shorter than the shortest task deadline {}",
                    sv.name,
                    crate::units::format_duration(min.0),
                    crate::units::format_duration(shortest)
                ))
                .hint("no request could ever start an attempt"));
        }
    }
    let r = &sv.routing;
    let kind = r.kind.unwrap_or(super::schema::RoutingKind::Static);
    let routing = routing(src, file, s, kind, &model)?;
    let default_model = match (&r.default, &routing) {
        (Some(d), _) => model(d)?,
        (
            None,
            RoutingConfig::Priority(m)
            | RoutingConfig::LeastInFlight(m)
            | RoutingConfig::PowerOfTwo(m),
        )
        | (None, RoutingConfig::Latency { models: m, .. }) => m[0],
        (None, RoutingConfig::Weighted(w)) => w[0].0,
        (None, RoutingConfig::Cost { models }) => models[0].0,
        (None, RoutingConfig::Static) => {
            return Err(src
                .error_at(
                    file,
                    s,
                    format!("strategy `{}`: static routing needs `default`", sv.name),
                )
                .hint("routing = { default = \"<model>\" }, or choose another `kind`"))
        }
    };
    let mut route_by_task = vec![default_model; tasks.len()];
    for (task, m) in &sv.routing.by_task {
        let ti = names
            .tasks
            .get(task.get_ref().as_str())
            .copied()
            .ok_or_else(|| {
                src.error_at(
                    file,
                    task,
                    format!(
                        "routing names task `{}`, which the traffic does not have",
                        task.get_ref()
                    ),
                )
                .hint(known_hint(
                    "tasks of [traffic]",
                    task.get_ref(),
                    names.tasks.keys().map(String::as_str),
                ))
            })?;
        route_by_task[ti] = model(m)?;
    }

    let chain = |v: &Vec<Spanned<String>>| -> R<Vec<u16>> {
        if v.len() >= MAX_CHAIN {
            return Err(src
                .error_at(
                    file,
                    &v[MAX_CHAIN - 1],
                    format!("a fallback chain holds at most {} models", MAX_CHAIN - 1),
                )
                .hint("the routed model comes first; the chain lists the models tried after it"));
        }
        v.iter().map(model).collect()
    };
    let base_chain = chain(&sv.fallback.chain)?;
    let chains = [
        sv.fallback
            .simple
            .as_ref()
            .map_or(Ok(base_chain.clone()), chain)?,
        sv.fallback
            .standard
            .as_ref()
            .map_or(Ok(base_chain.clone()), chain)?,
        sv.fallback
            .complex
            .as_ref()
            .map_or(Ok(base_chain.clone()), chain)?,
    ];

    let t = &sv.timeouts;
    let mut top = Timeouts::default().overlay(Timeouts {
        first_token: t.first_token.map(|d| d.0),
        between_chunks: t.between_chunks.map(|d| d.0),
        total: t.total.map(|d| d.0),
    });
    if t.total.is_none() {
        match preset.map(|p| p.total) {
            None => {}
            Some(PresetTimeout::Unbounded) => top.total = None,
            Some(PresetTimeout::After(d)) => top.total = Some(d),
        }
    }
    let mut tiers = [top; 3];
    for tier in Tier::ALL {
        let set = match tier {
            Tier::Simple => t.simple.as_ref(),
            Tier::Standard => t.standard.as_ref(),
            Tier::Complex => t.complex.as_ref(),
        };
        tiers[tier.index()] = timeouts(top, set);
    }

    let classify = classifier(src, file, preset, &sv.on)?;
    let layers = layers(src, file, s, &sv.layers)?;

    let mut keys_by_provider = BTreeMap::new();
    for (prov, keys) in &sv.keys {
        let Some(&pi) = names.providers.get(prov) else {
            let at = keys.first().map_or(s.span(), |k| k.span());
            return Err(src
                .error(
                    file,
                    at,
                    format!(
                        "strategy `{}` lists keys for unknown provider `{prov}`",
                        sv.name
                    ),
                )
                .hint(known_hint(
                    "providers",
                    prov,
                    names.providers.keys().map(String::as_str),
                )));
        };
        let mut ids = Vec::new();
        for k in keys {
            let ki = lookup(src, file, &names.keys, "key", k)?;
            if world.keys[ki].provider != pi {
                return Err(src.error_at(
                    file,
                    k,
                    format!("key `{}` does not belong to provider `{prov}`", k.get_ref()),
                ));
            }
            ids.push(ki as u16);
        }
        if ids.is_empty() {
            return Err(src.error_at(
                file,
                s,
                format!("strategy `{}` lists no keys for provider `{prov}`", sv.name),
            ));
        }
        keys_by_provider.insert(pi, ids);
    }

    let budget = match &sv.budget {
        None => preset
            .and_then(|p| p.budget)
            .unwrap_or(BudgetConfig::Unlimited),
        Some(b) => budget(src, file, b)?,
    };
    let breaker = match &sv.breaker {
        None => preset
            .and_then(|p| p.cooldown)
            .unwrap_or(BreakerConfig::None),
        Some(b) => breaker(src, file, b)?,
    };
    let throttle = match &sv.throttle {
        None => None,
        Some(t) => {
            let k = t.k.as_ref().map_or(2.0, |k| *k.get_ref());
            if let Some(ks) = &t.k {
                if !(k.is_finite() && (1.0..=100.0).contains(&k)) {
                    return Err(src
                        .error_at(file, ks, format!("throttle k = {k} is outside 1..100"))
                        .hint("k is how many times what the backend accepts the client may send; the SRE book uses 2"));
                }
            }
            let window = t.window.map_or(120 * SECS, |w| w.0);
            limit_window(
                src,
                file,
                s.span(),
                window,
                "throttle",
                "the SRE book uses two minutes",
            )?;
            Some(crate::policy::throttle::ThrottleConfig {
                k,
                window,
                min_requests: t.min_requests.unwrap_or(0),
            })
        }
    };

    let hedge = match &sv.hedge {
        None => None,
        Some(hs) => Some(hedge(src, file, hs)?),
    };
    let cost_guard = match &sv.cost_guard {
        None => None,
        Some(g) => Some(cost_guard(src, file, g)?),
    };
    let rate_limit = match &sv.rate_limit {
        None => None,
        Some(r) => Some(rate_limit(src, file, r)?),
    };
    let spend_budget = match &sv.spend_budget {
        None => None,
        Some(b) => {
            use super::schema::SpendUnitKind;
            use crate::policy::spend_budget::{SpendBudgetConfig, SpendUnit};
            let v = b.get_ref();
            let window = v.window.map_or(60 * SECS, |w| w.0);
            limit_window(
                src,
                file,
                b.span(),
                window,
                "spend budget",
                "the window is how far back spend counts; minutes, not hours",
            )?;
            let floor = v.floor.map_or(0.0, |f| f.0);
            let (unit, floor) = match v.unit {
                SpendUnitKind::Tokens => (SpendUnit::Tokens, floor),
                // Counted in micro-USD.
                SpendUnitKind::Usd => (SpendUnit::Usd, floor * 1e6),
            };
            if floor > 1e15 {
                return Err(src
                    .error_at(file, b, format!("a spend budget floor of {floor}"))
                    .hint("the floor is spend always allowed over the window, in tokens or USD"));
            }
            Some(SpendBudgetConfig {
                unit,
                percent: v.percent.map_or(0.2, |p| p.0),
                floor: floor.round() as u64,
                window,
            })
        }
    };
    let validation = crate::policy::validation::ValidationConfig {
        accept_fenced: sv.validation.accept_fenced.unwrap_or(true),
        safe_default: sv.validation.safe_default.unwrap_or(false),
    };
    let key_pool = sv.key_pool.as_ref().map(|k| {
        use super::schema::KeySelectKind;
        use crate::policy::keys::{KeyPoolConfig, KeySelect};
        KeyPoolConfig {
            select: match k.select.unwrap_or(KeySelectKind::RoundRobin) {
                KeySelectKind::RoundRobin => KeySelect::RoundRobin,
                KeySelectKind::LeastUsed => KeySelect::LeastUsed,
                KeySelectKind::MostRemaining => KeySelect::MostRemaining,
            },
            rest: k.rest.map_or(SECS, |r| r.0),
        }
    });
    let concurrency = match &sv.concurrency {
        None => None,
        Some(c) => Some(concurrency(src, file, c)?),
    };

    Ok(StrategyConfig {
        name: sv.name.clone(),
        clients,
        seed: seed ^ name_hash(&sv.name),
        models: model_infos(world, &keys_by_provider),
        retry,
        timeouts: tiers,
        min_attempt_time: sv.timeouts.min_attempt_time.map_or(0, |d| d.0),
        routing,
        route_by_task,
        default_model,
        chains,
        classify,
        budget,
        breaker,
        breaker_per_key: sv
            .breaker
            .as_ref()
            .is_some_and(|b| b.get_ref().per == Some(super::schema::BreakerPer::Key)),
        throttle,
        hedge,
        cost_guard,
        rate_limit,
        concurrency,
        key_pool,
        validation,
        spend_budget,
        fleet: fleet_scopes(sv),
        layers,
    })
}

/// The preset a strategy or layer names, if any.
fn find_preset(
    src: &Sources,
    file: FileId,
    name: Option<&Spanned<String>>,
) -> R<Option<&'static super::preset::Preset>> {
    let Some(p) = name else {
        return Ok(None);
    };
    super::preset::find(p.get_ref()).map(Some).ok_or_else(|| {
        src.error_at(file, p, format!("unknown preset `{}`", p.get_ref()))
            .hint(known_hint(
                "presets",
                p.get_ref(),
                super::preset::PRESETS.iter().map(|p| p.name),
            ))
    })
}

/// A retry loop's settings: `r`'s keys laid over the preset's, over the
/// defaults. `who` names the loop in errors, which point at `at`.
fn retry_config(
    src: &Sources,
    file: FileId,
    at: std::ops::Range<usize>,
    who: &str,
    preset: Option<&super::preset::Preset>,
    r: &super::schema::RetrySection,
) -> R<RetryConfig> {
    let max_retries = r.max_retries.unwrap_or(preset.map_or(2, |p| p.max_retries));
    if max_retries > MAX_RETRIES {
        return Err(src
            .error(file, at, format!("{who} has max_retries = {max_retries}"))
            .hint(format!(
                "at most {MAX_RETRIES} retries per model; a deadline usually ends them sooner"
            )));
    }
    let (preset_kind, preset_base, preset_cap) =
        preset
            .and_then(|p| p.backoff)
            .unwrap_or((BackoffKind::FullJitter, 500 * MILLIS, 8 * SECS));
    let kind = r.backoff.unwrap_or(preset_kind);
    let base = r.base.map_or(preset_base, |d| d.0);
    let cap = r.cap.map_or(preset_cap, |d| d.0);
    if cap < base && !matches!(kind, BackoffKind::None | BackoffKind::Constant) {
        return Err(src
            .error(
                file,
                at,
                format!(
                    "{who}: retry.cap ({}) is below retry.base ({})",
                    crate::units::format_duration(cap),
                    crate::units::format_duration(base)
                ),
            )
            .hint("the cap is the longest wait; make it at least the base"));
    }
    let backoff = match kind {
        BackoffKind::None => Backoff::None,
        BackoffKind::Constant => Backoff::Constant { base },
        BackoffKind::Exponential => Backoff::Exponential { base, cap },
        BackoffKind::FullJitter => Backoff::FullJitter { base, cap },
        BackoffKind::EqualJitter => Backoff::EqualJitter { base, cap },
        BackoffKind::Decorrelated => Backoff::Decorrelated { base, cap },
        BackoffKind::SdkJitter => Backoff::SdkJitter { base, cap },
        BackoffKind::Litellm => Backoff::Litellm { base, cap },
        BackoffKind::Randomized => Backoff::Randomized { base, cap },
    };
    let honor_retry_after = r
        .honor_retry_after
        .unwrap_or(preset.is_none_or(|p| p.honor_retry_after));
    if r.retry_after_keeps_step == Some(true) {
        // Set here, it would change nothing: say so rather than ignore it.
        let why = if !honor_retry_after {
            Some((
                "retry-after is not honoured (honor_retry_after = false)",
                "set honor_retry_after = true, or drop retry_after_keeps_step",
            ))
        } else if matches!(kind, BackoffKind::None | BackoffKind::Constant) {
            Some((
                "its backoff has no step that grows",
                "use a growing backoff (e.g. exponential), or drop retry_after_keeps_step",
            ))
        } else {
            None
        };
        if let Some((why, hint)) = why {
            return Err(src
                .error(
                    file,
                    at,
                    format!("{who} sets retry.retry_after_keeps_step = true, but {why}"),
                )
                .hint(hint));
        }
    }
    Ok(RetryConfig {
        max_retries,
        backoff,
        honor_retry_after,
        max_retry_after: r
            .max_retry_after
            .map_or(preset.map_or(60 * SECS, |p| p.max_retry_after), |d| d.0),
        too_long_retry_after: r
            .too_long_retry_after
            .or(preset.map(|p| p.too_long_retry_after))
            .unwrap_or_default(),
        honor_should_retry: r
            .honor_should_retry
            .unwrap_or(preset.is_none_or(|p| p.honor_should_retry)),
        max_elapsed: r
            .max_elapsed
            .map(|d| d.0)
            .or(preset.and_then(|p| p.max_elapsed)),
        retry_after_replaces_backoff: r
            .retry_after_replaces_backoff
            .unwrap_or(preset.is_some_and(|p| p.retry_after_replaces_backoff)),
        retry_after_keeps_step: r
            .retry_after_keeps_step
            .unwrap_or(preset.is_some_and(|p| p.retry_after_keeps_step)),
    })
}

/// What a loop does on each failure: `on` laid over the preset's, over the
/// defaults.
fn classifier(
    src: &Sources,
    file: FileId,
    preset: Option<&super::preset::Preset>,
    on: &BTreeMap<Spanned<String>, Disposition>,
) -> R<Classifier> {
    let mut classify = Classifier::default();
    for &(class, d) in preset.map_or(&[][..], |p| p.on) {
        classify.set(class, d);
    }
    for (k, d) in on {
        let class = FailureClass::from_name(k.get_ref()).ok_or_else(|| {
            src.error_at(file, k, format!("unknown failure kind `{}`", k.get_ref()))
                .hint(known_hint(
                    "failure kinds",
                    k.get_ref(),
                    FailureClass::ALL.iter().map(|c| c.name()),
                ))
        })?;
        classify.set(class, *d);
    }
    Ok(classify)
}

// A layer counts its retries in a `u8` (`ReqState::outer`).
const _: () = assert!(MAX_RETRIES <= u8::MAX as u32);

/// A strategy's `layers`, outermost first.
fn layers(
    src: &Sources,
    file: FileId,
    s: &Spanned<StrategySection>,
    ls: &[Spanned<super::schema::LayerSection>],
) -> R<Vec<LayerConfig>> {
    let sv = s.get_ref();
    if let Some(extra) = ls.get(MAX_LAYERS) {
        return Err(src
            .error_at(
                file,
                extra,
                format!(
                    "strategy `{}` has {} layers; at most {MAX_LAYERS}",
                    sv.name,
                    ls.len()
                ),
            )
            .hint("each layer multiplies the attempts of the ones inside it; real stacks nest two or three loops"));
    }
    let mut out: Vec<LayerConfig> = Vec::with_capacity(ls.len());
    for l in ls {
        let lv = l.get_ref();
        let name = lv.name.get_ref();
        if name == &sv.name || out.iter().any(|o| &o.name == name) {
            return Err(src
                .error_at(
                    file,
                    &lv.name,
                    format!("strategy `{}` has two layers named `{name}`", sv.name),
                )
                .hint("layer names tell the layers apart in the report; give each its own (and not the strategy's)"));
        }
        let who = format!("strategy `{}` layer `{name}`", sv.name);
        let preset = find_preset(src, file, lv.preset.as_ref())?;
        let retry = retry_config(src, file, l.span(), &who, preset, &lv.retry)?;
        out.push(LayerConfig {
            name: name.clone(),
            retry,
            classify: classifier(src, file, preset, &lv.on)?,
            timeout: lv.timeout.map(|t| t.0),
        });
    }
    Ok(out)
}

/// Which policies of `sv` keep one state for the whole fleet.
fn fleet_scopes(sv: &super::schema::StrategySection) -> crate::policy::scope::FleetScopes {
    use super::schema::Scope;
    let fleet = |s: Option<Scope>| s == Some(Scope::Fleet);
    crate::policy::scope::FleetScopes {
        budget: fleet(sv.budget.as_ref().and_then(|b| b.get_ref().scope)),
        spend_budget: fleet(sv.spend_budget.as_ref().and_then(|b| b.get_ref().scope)),
        breaker: fleet(sv.breaker.as_ref().and_then(|b| b.get_ref().scope)),
        throttle: fleet(sv.throttle.as_ref().and_then(|t| t.scope)),
        cost_guard: fleet(sv.cost_guard.as_ref().and_then(|g| g.get_ref().scope)),
        key_pool: fleet(sv.key_pool.as_ref().and_then(|k| k.scope)),
        concurrency: fleet(sv.concurrency.as_ref().and_then(|c| c.get_ref().scope)),
    }
}

fn budget(
    src: &Sources,
    file: FileId,
    b: &Spanned<super::schema::BudgetSection>,
) -> R<BudgetConfig> {
    use super::schema::BudgetKind;
    let v = b.get_ref();
    let name = match v.kind {
        BudgetKind::Ratio => "ratio",
        BudgetKind::Concurrent => "concurrent",
        BudgetKind::TokenBucket => "token_bucket",
    };
    let given = [
        (
            "percent",
            v.percent.is_some(),
            matches!(v.kind, BudgetKind::Ratio | BudgetKind::Concurrent),
        ),
        (
            "min_per_s",
            v.min_per_s.is_some(),
            v.kind == BudgetKind::Ratio,
        ),
        ("window", v.window.is_some(), v.kind == BudgetKind::Ratio),
        (
            "min_concurrent",
            v.min_concurrent.is_some(),
            v.kind == BudgetKind::Concurrent,
        ),
        (
            "max_tokens",
            v.max_tokens.is_some(),
            v.kind == BudgetKind::TokenBucket,
        ),
        (
            "token_ratio",
            v.token_ratio.is_some(),
            v.kind == BudgetKind::TokenBucket,
        ),
    ];
    refuse_keys(
        src,
        file,
        b,
        &given,
        |key| format!("`{key}` does not apply to a `{name}` budget"),
        "budget",
    )?;
    if let Some(w) = v.window {
        limit_window(
            src,
            file,
            b.span(),
            w.0,
            "budget",
            "the window is how far back requests and retries count; seconds, not hours",
        )?;
    }
    let percent = v.percent.map_or(0.2, |p| p.0);
    Ok(match v.kind {
        BudgetKind::Ratio => BudgetConfig::Ratio {
            percent,
            min_per_s: v.min_per_s.map_or(10.0, |m| m.0),
            window: v.window.map_or(10 * SECS, |w| w.0),
        },
        BudgetKind::Concurrent => BudgetConfig::Concurrent {
            percent,
            min_concurrent: v.min_concurrent.unwrap_or(3),
        },
        BudgetKind::TokenBucket => BudgetConfig::TokenBucket {
            max_tokens: v.max_tokens.map_or(10.0, |m| m.0),
            token_ratio: v.token_ratio.map_or(0.1, |r| r.0),
        },
    })
}

fn rate_limit(
    src: &Sources,
    file: FileId,
    r: &Spanned<super::schema::RateLimitSection>,
) -> R<crate::policy::rate_limit::RateLimitConfig> {
    use super::schema::{LimitPerKind, WhenEmpty};
    use crate::policy::rate_limit::{LimitPer, RateLimitConfig};
    let v = r.get_ref();
    let from_headers = v.from_headers.unwrap_or(false);
    if v.rpm.is_none() && v.tpm.is_none() && !from_headers {
        return Err(src
            .error_at(file, r, "a rate limit with neither rpm nor tpm")
            .hint("give rpm (requests per minute), tpm (tokens per minute), both, or from_headers = true"));
    }
    if v.rpm == Some(0) || v.tpm == Some(0) {
        return Err(src
            .error_at(file, r, "a rate limit of 0 per minute would never send")
            .hint("leave the key out for no limit on it"));
    }
    let burst = v.burst.map_or(60 * SECS, |b| b.0);
    limit_window(
        src,
        file,
        r.span(),
        burst,
        "rate limit burst",
        "the burst is how much refill a bucket holds; a minute is the provider's own window",
    )?;
    Ok(RateLimitConfig {
        rpm: v.rpm,
        tpm: v.tpm,
        burst,
        per: match v.per.unwrap_or(LimitPerKind::Provider) {
            LimitPerKind::Provider => LimitPer::Provider,
            LimitPerKind::Key => LimitPer::Key,
        },
        wait: v.when_empty.unwrap_or(WhenEmpty::Wait) == WhenEmpty::Wait,
        from_headers,
        fleet: v.scope.unwrap_or_default() == super::schema::Scope::Fleet,
    })
}

fn concurrency(
    src: &Sources,
    file: FileId,
    c: &Spanned<super::schema::ConcurrencySection>,
) -> R<crate::policy::concurrency::ConcurrencyConfig> {
    use super::schema::ConcurrencyKind;
    use crate::policy::concurrency::ConcurrencyConfig;
    let v = c.get_ref();
    let (name, fixed) = match v.kind {
        ConcurrencyKind::Fixed => ("fixed", true),
        ConcurrencyKind::Aimd => ("aimd", false),
    };
    let given = [
        ("limit", v.limit.is_some(), fixed),
        ("initial", v.initial.is_some(), !fixed),
        ("min", v.min.is_some(), !fixed),
        ("max", v.max.is_some(), !fixed),
        ("backoff", v.backoff.is_some(), !fixed),
    ];
    refuse_keys(
        src,
        file,
        c,
        &given,
        |key| format!("`{key}` does not apply to a `{name}` concurrency limit"),
        "concurrency",
    )?;
    // Most attempts in flight or requests queued per replica.
    const MOST: u32 = 1_000_000;
    let queue = v.queue.unwrap_or(0);
    let limit = v.limit.unwrap_or(1000);
    let (initial, min, max) = (
        v.initial.unwrap_or(20),
        v.min.unwrap_or(20),
        v.max.unwrap_or(200),
    );
    let bad = if fixed {
        limit == 0 || limit > MOST
    } else {
        min == 0 || min > initial || initial > max || max > MOST
    };
    if bad || queue > MOST {
        return Err(src
            .error_at(file, c, format!("concurrency limit `{name}` with impossible bounds"))
            .hint(format!(
                "limits from 1 to {MOST}, and for aimd 1 <= min <= initial <= max; a queue of at most {MOST}"
            )));
    }
    let backoff = v.backoff.map_or(0.9, |b| b.0);
    let backoff_ok = backoff > 0.0 && backoff < 1.0;
    if !fixed && !backoff_ok {
        return Err(src
            .error_at(file, c, "an aimd backoff must be above 0 and below 1")
            .hint(
                "the limit is multiplied by it on a 429, 503, 529 or timeout; Netflix uses 0.9",
            ));
    }
    Ok(if fixed {
        ConcurrencyConfig::Fixed { limit, queue }
    } else {
        ConcurrencyConfig::Aimd {
            initial,
            min,
            max,
            backoff,
            queue,
        }
    })
}

fn cost_guard(
    src: &Sources,
    file: FileId,
    g: &Spanned<super::schema::CostGuardSection>,
) -> R<crate::policy::cost_guard::CostGuardConfig> {
    use super::schema::GuardActionKind;
    use crate::policy::cost_guard::{CostGuardConfig, GuardAction};
    use crate::units::NanoUsd;
    // A billion USD: far beyond any budget, and far from overflowing nano-USD.
    const MAX_USD: f64 = 1e9;
    let v = g.get_ref();
    let usd = |x: f64| -> R<NanoUsd> {
        if x > MAX_USD {
            return Err(src
                .error_at(file, g, format!("a cost guard amount of {x} USD"))
                .hint("amounts are in USD, at most a billion"));
        }
        Ok(NanoUsd((x * 1e9).round() as u64))
    };
    let hourly = v.hourly_usd.map(|x| usd(x.0)).transpose()?;
    let daily = v.daily_usd.map(|x| usd(x.0)).transpose()?;
    let alerts = v
        .alerts_usd
        .iter()
        .map(|x| usd(x.0))
        .collect::<R<Vec<_>>>()?;
    if alerts.windows(2).any(|w| w[0] >= w[1]) {
        return Err(src
            .error_at(file, g, "cost guard alerts_usd must be in ascending order")
            .hint("each threshold fires once, as total spend reaches it: e.g. [10, 50, 100, 500, 1000]"));
    }
    let action = match v.action.unwrap_or(GuardActionKind::Reject) {
        GuardActionKind::Alert => GuardAction::Alert,
        GuardActionKind::Downgrade => GuardAction::Downgrade,
        GuardActionKind::Reject => GuardAction::Reject,
    };
    if hourly.is_none() && daily.is_none() {
        if v.action.is_some() {
            return Err(src
                .error_at(file, g, "a cost guard `action` with no limit to act at")
                .hint("give hourly_usd or daily_usd, or leave out `action` for alerts only"));
        }
        if alerts.is_empty() {
            return Err(src
                .error_at(file, g, "a cost guard with no limit and no alert")
                .hint("give hourly_usd, daily_usd or alerts_usd"));
        }
    }
    Ok(CostGuardConfig {
        hourly,
        daily,
        alerts,
        action,
    })
}

fn hedge(
    src: &Sources,
    file: FileId,
    hs: &Spanned<super::schema::HedgeSection>,
) -> R<crate::policy::hedge::HedgeConfig> {
    use crate::policy::hedge::{HedgeConfig, HedgeDelay, HedgeTarget};
    let v = hs.get_ref();
    let delay = match &v.delay {
        None => HedgeDelay::Fixed(2 * SECS),
        Some(d) => {
            let text = d.get_ref().trim();
            let bad = || {
                src.error_at(file, d, format!("hedge delay `{text}` is neither a duration nor a percentile"))
                    .hint("write a duration such as \"1.5s\", or a percentile of the model's observed time to first token such as \"p95\" (p1 to p99.9)")
            };
            if let Some(p) = text.strip_prefix('p') {
                let p: f64 = p.parse().map_err(|_| bad())?;
                if !(p.is_finite() && (1.0..=99.9).contains(&p)) {
                    return Err(bad());
                }
                HedgeDelay::Quantile(p / 100.0)
            } else {
                let ns = crate::units::parse_duration(text).map_err(|_| bad())?;
                if ns == 0 {
                    return Err(src
                        .error_at(file, d, "a hedge delay of 0 doubles every attempt")
                        .hint(
                            "give a delay near the model's usual time to first token, or \"p95\"",
                        ));
                }
                HedgeDelay::Fixed(ns)
            }
        }
    };
    let target = match v.to.unwrap_or(super::schema::HedgeTo::Same) {
        super::schema::HedgeTo::Same => HedgeTarget::Same,
        super::schema::HedgeTo::Next => HedgeTarget::Next,
    };
    Ok(HedgeConfig { delay, target })
}

fn breaker(
    src: &Sources,
    file: FileId,
    b: &Spanned<super::schema::BreakerSection>,
) -> R<BreakerConfig> {
    use super::schema::BreakerKind;
    let v = b.get_ref();
    let name = match v.kind {
        BreakerKind::Ratio => "ratio",
        BreakerKind::Cooldown => "cooldown",
        BreakerKind::FailureRate => "failure_rate",
    };
    let ratio = v.kind == BreakerKind::Ratio;
    let rate = v.kind == BreakerKind::FailureRate;
    let given = [
        ("failure_ratio", v.failure_ratio.is_some(), ratio),
        ("min_throughput", v.min_throughput.is_some(), ratio),
        ("window", v.window.is_some(), ratio),
        ("break_for", v.break_for.is_some(), ratio),
        ("probes", v.probes.is_some(), ratio),
        (
            "allowed_fails",
            v.allowed_fails.is_some(),
            v.kind == BreakerKind::Cooldown,
        ),
        ("cooldown", v.cooldown.is_some(), !ratio),
        ("failure_threshold", v.failure_threshold.is_some(), rate),
        ("all_failed_min", v.all_failed_min.is_some(), rate),
        ("single_deployment", v.single_deployment.is_some(), rate),
    ];
    refuse_keys(
        src,
        file,
        b,
        &given,
        |key| format!("`{key}` does not apply to a `{name}` breaker"),
        "breaker",
    )?;
    if let Some(w) = v.window {
        limit_window(
            src,
            file,
            b.span(),
            w.0,
            "breaker",
            "the window is how far back failures count; minutes, not hours",
        )?;
    }
    if v.failure_ratio.is_some_and(|r| r.0 == 0.0) || v.min_throughput.is_some_and(|m| m < 2) {
        return Err(src
            .error_at(
                file,
                b,
                "a ratio breaker needs failure_ratio above 0 and min_throughput of at least 2",
            )
            .hint("as in Polly: otherwise a single attempt, or a success, could open it"));
    }
    if v.all_failed_min == Some(0) {
        return Err(src
            .error_at(file, b, "all_failed_min must be at least 1")
            .hint("it is how many calls, every one failed, cool down even a lone deployment; LiteLLM's is 1000"));
    }
    if v.probes == Some(0) {
        return Err(src
            .error_at(file, b, "a breaker needs at least one probe")
            .hint("probes is how many attempts test a half-open model"));
    }
    Ok(match v.kind {
        BreakerKind::Ratio => BreakerConfig::Ratio {
            failure_ratio: v.failure_ratio.map_or(0.1, |r| r.0),
            min_throughput: v.min_throughput.unwrap_or(100),
            window: v.window.map_or(30 * SECS, |w| w.0),
            break_for: v.break_for.map_or(5 * SECS, |d| d.0),
            probes: v.probes.unwrap_or(1),
        },
        BreakerKind::Cooldown => BreakerConfig::Cooldown {
            allowed_fails: v.allowed_fails.unwrap_or(3),
            cooldown: v.cooldown.map_or(5 * SECS, |d| d.0),
        },
        BreakerKind::FailureRate => BreakerConfig::FailureRate {
            failure_threshold: v.failure_threshold.map_or(0.5, |r| r.0),
            all_failed_min: v.all_failed_min.unwrap_or(1000),
            cooldown: v.cooldown.map_or(5 * SECS, |d| d.0),
            single_deployment: v.single_deployment.unwrap_or(false),
        },
    })
}

fn routing(
    src: &Sources,
    file: FileId,
    s: &Spanned<StrategySection>,
    kind: super::schema::RoutingKind,
    model: &dyn Fn(&Spanned<String>) -> R<u16>,
) -> R<RoutingConfig> {
    use super::schema::RoutingKind as K;
    let r = &s.get_ref().routing;
    let name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let given = [
        ("default", r.default.is_some(), kind == K::Static),
        ("by_task", !r.by_task.is_empty(), kind == K::Static),
        (
            "models",
            r.models.is_some(),
            !matches!(kind, K::Static | K::Weighted),
        ),
        ("weights", r.weights.is_some(), kind == K::Weighted),
        ("tiers", r.tiers.is_some(), kind == K::Cost),
        ("alpha", r.alpha.is_some(), kind == K::Latency),
        ("explore", r.explore.is_some(), kind == K::Latency),
    ];
    refuse_keys(
        src,
        file,
        s,
        &given,
        |key| format!("`routing.{key}` does not apply to `{name}` routing"),
        "routing",
    )?;
    let models = || -> R<Vec<u16>> {
        let list = r.models.as_deref().unwrap_or(&[]);
        if list.is_empty() {
            return Err(src
                .error_at(
                    file,
                    s,
                    format!("`{name}` routing needs `models`, a non-empty list of candidates"),
                )
                .hint("routing = { kind = \"...\", models = [\"a\", \"b\"] }"));
        }
        if list.len() >= crate::policy::fallback::MAX_CHAIN {
            return Err(src.error_at(
                file,
                &list[0],
                format!(
                    "routing lists at most {} candidates",
                    crate::policy::fallback::MAX_CHAIN - 1
                ),
            ));
        }
        list.iter().map(model).collect()
    };
    Ok(match kind {
        K::Static => RoutingConfig::Static,
        K::Priority => RoutingConfig::Priority(models()?),
        K::LeastInFlight => RoutingConfig::LeastInFlight(models()?),
        K::P2c => RoutingConfig::PowerOfTwo(models()?),
        K::Latency => RoutingConfig::Latency {
            models: models()?,
            alpha: r.alpha.map_or(0.2, |a| a.0),
            explore: r.explore.map_or(0.05, |e| e.0),
        },
        K::Weighted => {
            let w = r
                .weights
                .as_ref()
                .filter(|w| !w.is_empty())
                .ok_or_else(|| {
                    src.error_at(file, s, "`weighted` routing needs `weights`")
                        .hint(
                            "routing = { kind = \"weighted\", weights = { \"a\" = 3, \"b\" = 1 } }",
                        )
                })?;
            let mut out = Vec::new();
            for (m, weight) in w {
                out.push((model(m)?, weight.0));
            }
            RoutingConfig::Weighted(out)
        }
        K::Cost => {
            let ms = models()?;
            let tiers = r.tiers.as_ref();
            if let Some(t) = tiers {
                for name in t.keys() {
                    let id = model(name)?;
                    if !ms.contains(&id) {
                        return Err(src.error_at(
                            file,
                            name,
                            format!(
                                "`routing.tiers` names `{}`, which is not among `models`",
                                name.get_ref()
                            ),
                        ));
                    }
                }
            }
            let names = r.models.as_deref().unwrap_or(&[]);
            let models = ms
                .iter()
                .zip(names)
                .map(|(&id, n)| {
                    let bits = tiers
                        .and_then(|t| t.get(n))
                        .map_or(tier_bits(&Tier::ALL), |v| tier_bits(v));
                    (id, bits)
                })
                .collect();
            RoutingConfig::Cost { models }
        }
    })
}

/// Refuses keys given for a kind they do not belong to: `given` lists
/// (key, present, applies to this kind).
fn refuse_keys<T>(
    src: &Sources,
    file: FileId,
    at: &Spanned<T>,
    given: &[(&str, bool, bool)],
    what: impl Fn(&str) -> String,
    table: &str,
) -> R<()> {
    for &(key, present, applies) in given {
        if present && !applies {
            return Err(src.error_at(file, at, what(key)).hint(format!(
                "see the {table} table in the README's scenario reference"
            )));
        }
    }
    Ok(())
}

/// Refuses a sliding window longer than [`MAX_WINDOW`] (budgets, breakers
/// and throttles keep a slot per second).
fn limit_window(
    src: &Sources,
    file: FileId,
    at: std::ops::Range<usize>,
    window: Nanos,
    what: &str,
    hint: &str,
) -> R<()> {
    if window > MAX_WINDOW {
        return Err(src
            .error(
                file,
                at,
                format!(
                    "a {what} window longer than 10m ({})",
                    crate::units::format_duration(window)
                ),
            )
            .hint(hint));
    }
    Ok(())
}
