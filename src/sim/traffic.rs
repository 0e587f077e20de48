//! Traffic generation: arrival sources and the requests they bring.
//!
//! Every source has its own random stream keyed by the source number, and a
//! request's attributes come from a stream keyed by its id, so every
//! strategy sees exactly the same arrivals and request sizes however it
//! behaves (common random numbers).

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::dist::{normal, standard_exponential, unit};
use crate::policy::Request;
use crate::scenario::{Scenario, TaskSpec};
use crate::units::{Nanos, SECS};
use crate::world::draws::{rng, stream, Block};

/// Who sends a source's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The strategy under test.
    Strategy,
    /// Another tenant (index into the scenario's tenants).
    Tenant(usize),
}

#[derive(Clone, Debug)]
enum Process {
    /// Poisson thinned against the profile's top rate.
    Profile { max_rate: f64 },
    /// Exactly `n` arrivals spread over [start, start + over).
    Burst { start: Nanos, n: u32, over: Nanos },
    /// Evenly spaced.
    Fixed {
        interval: f64,
        start: Nanos,
        end: Nanos,
    },
    /// Poisson at a constant rate until `end`.
    Poisson { rate: f64, end: Nanos },
}

/// One arrival source.
pub struct Source {
    /// Index (part of request ids).
    pub index: u64,
    /// Who sends.
    pub sender: Sender,
    /// Fixed task, if any (runaways, tenants).
    pub task: Option<usize>,
    /// The id of the arrival already scheduled, if any.
    pub pending: Option<u64>,
    process: Process,
    rng: ChaCha8Rng,
    count: u64,
    t: f64,
}

/// A standard exponential draw from a source's stream.
#[inline]
fn exponential_draw(rng: &mut ChaCha8Rng) -> f64 {
    let w = rng.next_u64();
    standard_exponential(w, || rng.next_u64())
}

impl Source {
    /// The next arrival time before `end`, if any.
    pub fn next(&mut self, sc: &Scenario, end: Nanos) -> Option<(Nanos, u64)> {
        let at = match &self.process {
            Process::Profile { max_rate } => {
                if *max_rate <= 0.0 {
                    return None;
                }
                loop {
                    self.t += exponential_draw(&mut self.rng) / max_rate * SECS as f64;
                    if self.t >= end as f64 {
                        return None;
                    }
                    let r = sc.traffic.rate_at(self.t as Nanos);
                    if unit(self.rng.next_u64()) * max_rate < r {
                        break self.t as Nanos;
                    }
                }
            }
            Process::Burst { start, n, over } => {
                if self.count >= u64::from(*n) {
                    return None;
                }
                let k = self.count as f64 + unit(self.rng.next_u64());
                start + (k / f64::from(*n) * *over as f64) as Nanos
            }
            Process::Fixed {
                interval,
                start,
                end: stop,
            } => {
                let t = *start as f64 + self.count as f64 * interval;
                if t >= *stop as f64 {
                    return None;
                }
                t as Nanos
            }
            Process::Poisson { rate, end: stop } => {
                self.t += exponential_draw(&mut self.rng) / rate * SECS as f64;
                if self.t >= *stop as f64 {
                    return None;
                }
                self.t as Nanos
            }
        };
        if at >= end {
            return None;
        }
        let id = (self.index << 40) | self.count;
        self.count += 1;
        Some((at, id))
    }
}

/// Every source of a scenario, in a fixed order: the main profile, bursts,
/// runaway loops, tenants.
pub fn sources(sc: &Scenario) -> Vec<Source> {
    let t = &sc.traffic;
    let mut out = Vec::new();
    let mut add = |sender, task, process| {
        let index = out.len() as u64;
        out.push(Source {
            index,
            sender,
            task,
            pending: None,
            process,
            rng: rng(sc.seed, stream::ARRIVALS, index, 0, 0),
            count: 0,
            t: 0.0,
        });
    };
    add(
        Sender::Strategy,
        None,
        Process::Profile {
            max_rate: t.max_rate(),
        },
    );
    for &(start, n, over) in &t.bursts {
        add(Sender::Strategy, None, Process::Burst { start, n, over });
    }
    for r in &t.runaways {
        add(
            Sender::Strategy,
            Some(r.task),
            Process::Fixed {
                interval: SECS as f64 / r.rate,
                start: r.start,
                end: r.end,
            },
        );
    }
    for (i, tn) in t.tenants.iter().enumerate() {
        add(
            Sender::Tenant(i),
            Some(tn.task),
            Process::Poisson {
                rate: tn.rate,
                end: sc.duration,
            },
        );
    }
    out
}

fn pick_task(tasks: &[TaskSpec], u: f64) -> usize {
    let total: f64 = tasks.iter().map(|t| t.weight).sum();
    let mut x = u * total;
    for (i, t) in tasks.iter().enumerate() {
        if x < t.weight {
            return i;
        }
        x -= t.weight;
    }
    tasks.len() - 1
}

/// Requests whose attribute words share one request block: consecutive ids
/// of a source (a source's ids are `index << 40 | count`).
const REQUESTS_PER_BLOCK: u64 = 8;
/// Words per request in a request block (three used).
const REQUEST_WORDS: usize = Block::WORDS / REQUESTS_PER_BLOCK as usize;

/// The last request block made on this thread in one source slot.
#[derive(Default)]
struct RequestMemo {
    /// `(seed, group)` of `block`, if it holds one.
    key: Option<(u64, u64)>,
    block: Block,
}

thread_local! {
    static REQUEST_BLOCKS: std::cell::RefCell<[RequestMemo; 8]> = Default::default();
}

/// The three attribute words of request `id`: words `4 (id mod 8)` on of
/// the block keyed by `(seed, id / 8)`. A pure function of `(seed, id)`;
/// arrivals come in id order per source, so the block made for the first
/// of eight neighbours is remembered (per thread, per source slot) and
/// serves the other seven.
fn request_words(seed: u64, id: u64) -> [u64; 3] {
    let group = id / REQUESTS_PER_BLOCK;
    let at = (id % REQUESTS_PER_BLOCK) as usize * REQUEST_WORDS;
    REQUEST_BLOCKS.with(|memo| {
        let mut memo = memo.borrow_mut();
        let slot = &mut memo[((id >> 40) & 7) as usize];
        if slot.key != Some((seed, group)) {
            slot.block.fill(seed, stream::REQUEST, group, 0, 0);
            slot.key = Some((seed, group));
        }
        let b = &slot.block;
        [b.word(at), b.word(at + 1), b.word(at + 2)]
    })
}

/// The request with id `id` arriving at `now`.
pub fn request(sc: &Scenario, id: u64, now: Nanos, fixed_task: Option<usize>) -> Request {
    let [w_task, w_in, w_in_more] = request_words(sc.seed, id);
    let u_task = unit(w_task);
    let z_in = normal(w_in, w_in_more);
    let task = fixed_task.unwrap_or_else(|| pick_task(&sc.traffic.tasks, u_task));
    let spec = &sc.traffic.tasks[task];
    let input = crate::units::round(spec.input.at(z_in)).clamp(1.0, 1e9) as u32;
    Request {
        id,
        task: task as u16,
        tier: spec.tier,
        input_tokens: input,
        max_tokens: spec.max_tokens,
        json: spec.json,
        deadline: now + spec.deadline,
        measured: now >= sc.warmup,
    }
}

/// Output tokens request `id` of task `task` gets from `model`: drawn once
/// per (request, model), capped by `max_tokens`.
pub fn output_tokens(sc: &Scenario, id: u64, task: usize, model: u16) -> u32 {
    let z = crate::world::draws::output_len_z(sc.seed, id, u64::from(model));
    output_tokens_at(sc, task, z)
}

/// Output tokens of task `task` for the standard normal `z`.
pub fn output_tokens_at(sc: &Scenario, task: usize, z: f64) -> u32 {
    sc.traffic.tasks[task].output_tokens(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_words_depend_only_on_seed_and_id() {
        let direct = |seed: u64, id: u64| {
            let b = Block::new(seed, stream::REQUEST, id / 8, 0, 0);
            let at = (id % 8) as usize * 4;
            [b.word(at), b.word(at + 1), b.word(at + 2)]
        };
        // Out of order, three sources, two of them in the same memo slot
        // (1 and 9), two seeds: always the words of the request's own key.
        let ids: Vec<u64> = (0..41u64)
            .chain((0..41).rev())
            .map(|k| k * 37 % 41)
            .flat_map(|c| [c, 1 << 40 | c, 9 << 40 | c])
            .collect();
        for seed in [1, 2, 1] {
            for &id in &ids {
                assert_eq!(request_words(seed, id), direct(seed, id), "{seed} {id}");
            }
        }
        assert_ne!(request_words(1, 0), request_words(1, 1));
        assert_ne!(request_words(1, 0), request_words(2, 0));
    }
}
