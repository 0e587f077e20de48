//! The cost ledger: what every attempt cost, from the price table.
//!
//! Providers bill tokens, not requests: a failed or cancelled attempt that
//! had started still bills its prompt, and every output token it streamed
//! before it broke or was cancelled. A retry storm therefore costs money
//! even when nothing succeeds, and the ledger must see it. Money is integer
//! nano-USD, so totals do not depend on the order attempts ended in.

use crate::units::NanoUsd;

use super::config::ModelInfo;

/// Tokens and money of one model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelCost {
    /// Prompt tokens billed.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// Cost.
    pub cost: NanoUsd,
}

/// Per-model totals, for measured and for all requests.
#[derive(Clone, Debug, Default)]
pub struct CostLedger {
    /// Per model, measured requests only (warm-up left out).
    pub measured: Vec<ModelCost>,
    /// Per model, every request.
    pub all: Vec<ModelCost>,
}

impl CostLedger {
    /// A ledger for `n` models.
    pub fn new(n: usize) -> Self {
        Self {
            measured: vec![ModelCost::default(); n],
            all: vec![ModelCost::default(); n],
        }
    }

    /// The price of `input` and `output` tokens on `model`.
    pub fn price(model: &ModelInfo, input: u32, output: u32) -> NanoUsd {
        NanoUsd::for_tokens(u64::from(input), model.price_in)
            .saturating_add(NanoUsd::for_tokens(u64::from(output), model.price_out))
    }

    /// Books an attempt and returns its cost.
    pub fn charge(
        &mut self,
        model_id: usize,
        model: &ModelInfo,
        input: u32,
        output: u32,
        measured: bool,
    ) -> NanoUsd {
        let cost = Self::price(model, input, output);
        let book = |m: &mut ModelCost| {
            m.input_tokens += u64::from(input);
            m.output_tokens += u64::from(output);
            m.cost += cost;
        };
        book(&mut self.all[model_id]);
        if measured {
            book(&mut self.measured[model_id]);
        }
        cost
    }

    /// Total cost of measured requests.
    pub fn measured_total(&self) -> NanoUsd {
        self.measured
            .iter()
            .fold(NanoUsd::ZERO, |a, m| a.saturating_add(m.cost))
    }

    /// Adds another ledger's figures (replicas of one strategy).
    pub fn merge(&mut self, o: &Self) {
        for (a, b) in self
            .measured
            .iter_mut()
            .zip(&o.measured)
            .chain(self.all.iter_mut().zip(&o.all))
        {
            a.input_tokens += b.input_tokens;
            a.output_tokens += b.output_tokens;
            a.cost += b.cost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::pico_per_token;

    #[test]
    fn charges_input_and_output_at_their_prices() {
        let m = ModelInfo {
            name: "m".into(),
            price_in: pico_per_token(2.5),
            price_out: pico_per_token(10.0),
            keys: vec![0],
            provider: 0,
        };
        let mut l = CostLedger::new(1);
        // 1000 in at 2.5/M + 500 out at 10/M = 0.0025 + 0.005 USD.
        assert_eq!(l.charge(0, &m, 1000, 500, true), NanoUsd(7_500_000));
        assert_eq!(l.charge(0, &m, 1000, 0, false), NanoUsd(2_500_000));
        assert_eq!(l.measured_total(), NanoUsd(7_500_000));
        assert_eq!(l.all[0].input_tokens, 2000);
    }
}
