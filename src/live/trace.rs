//! The proof that live mode runs the same core: the driver records every
//! input it gives a client core (time and input) and every action the core
//! gives back, in the order they happened; [`replay`] feeds the inputs to
//! fresh cores built as the simulator builds them and checks that they give
//! back the very same actions, in the same order.
//!
//! A trace is JSON lines, one [`Event`] each.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::policy::{AttemptId, Client, Outcome, Request, StrategyConfig};
use crate::scenario::Scenario;
use crate::sim::tally;
use crate::units::Nanos;
use crate::wire::RateLimits;

/// One input to a client core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// `handle_request`.
    Request(Request),
    /// `handle_first_token`.
    FirstToken(AttemptId),
    /// `handle_chunk`.
    Chunk(AttemptId),
    /// `handle_outcome`.
    Outcome(AttemptId, Outcome, RateLimits),
    /// `handle_timeout`.
    Timeout,
    /// `handle_room` (a place of the fleet's concurrency limit for this
    /// replica's oldest queued request).
    Room,
}

/// What happened at a client core, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The driver gave client `client` an input at `now`.
    In {
        /// Client index (replicas, then tenants).
        client: u32,
        /// Core time.
        now: Nanos,
        /// The input.
        input: Input,
    },
    /// Client `client` gave back this action (its `Debug` form).
    Out {
        /// Client index.
        client: u32,
        /// The action.
        action: String,
    },
}

/// Feeds `input` to `client` at `now`.
pub fn apply(client: &mut Client, now: Nanos, input: &Input) {
    match *input {
        Input::Request(r) => client.handle_request(now, r),
        Input::FirstToken(id) => client.handle_first_token(now, id),
        Input::Chunk(id) => client.handle_chunk(now, id),
        Input::Outcome(id, o, l) => client.handle_outcome(now, id, o, l),
        Input::Timeout => client.handle_timeout(now),
        Input::Room => client.handle_room(now),
    }
}

/// Writes a trace as JSON lines.
pub fn write(path: &Path, events: &[Event]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for e in events {
        serde_json::to_writer(&mut w, e)?;
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads a trace written by [`write`].
pub fn read(path: &Path) -> anyhow::Result<Vec<Event>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let line = line?;
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a trace event", path.display(), i + 1))
        })
        .collect()
}

/// Replays a trace of `strategy` through fresh client cores; `Err` names
/// the first event where the cores disagree with the trace.
pub fn replay(
    sc: &Scenario,
    strategy: &Arc<StrategyConfig>,
    events: &[Event],
) -> Result<(), String> {
    let (mut clients, _) = tally::clients_for(sc, strategy);
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::In { client, now, input } => {
                let c = clients
                    .get_mut(*client as usize)
                    .ok_or_else(|| format!("event {i}: no client {client}"))?;
                apply(c, *now, input);
            }
            Event::Out { client, action } => {
                let c = clients
                    .get_mut(*client as usize)
                    .ok_or_else(|| format!("event {i}: no client {client}"))?;
                match c.poll_action() {
                    Some(a) if format!("{a:?}") == *action => {}
                    Some(a) => {
                        return Err(format!(
                            "event {i}: the trace has {action}, the core gives {a:?}"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "event {i}: the trace has {action}, the core gives nothing"
                        ))
                    }
                }
            }
        }
    }
    for (n, c) in clients.iter_mut().enumerate() {
        if let Some(a) = c.poll_action() {
            return Err(format!("after the trace, client {n} still gives {a:?}"));
        }
    }
    Ok(())
}
