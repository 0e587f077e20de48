//! Cost guards: spending limits per hour and per day, alerts at thresholds,
//! and what to do when a limit is reached.
//!
//! Retries, fallbacks to pricier models and, above all, a loop someone
//! forgot can burn through a month's budget in a night ("the runaway loop
//! that burned $2,400"). Gateways answer with spend limits: LiteLLM's
//! `max_budget` with a `budget_duration` rejects requests once a key or team
//! has spent it, Portkey's budget limits do the same, and cost trackers send
//! alerts as spend crosses fixed amounts. The guard here does all three:
//!
//! - every billed token (successes, failures and cancelled attempts alike)
//!   counts the moment its attempt is reported;
//! - alert thresholds are amounts of total spend since the run started; each
//!   fires once, with the virtual time it was crossed;
//! - the hourly and daily limits count spend in fixed windows of virtual
//!   time (hour `k` is `[k h, (k+1) h)` from the start of the run), as
//!   LiteLLM's `budget_duration` resets its counter;
//! - at a limit, `alert` only raises an alert (once per window), `downgrade`
//!   sends new requests to the cheapest model of their chain (the routed
//!   model and the tier's fallbacks, priced at prompt plus `max_tokens`),
//!   and `reject` fails new requests at once as `cost_limit` (LiteLLM's
//!   "Budget has been exceeded"). Requests already in flight finish.

use crate::units::{NanoUsd, Nanos, SECS};

/// One hour of virtual time.
pub const HOUR: Nanos = 3600 * SECS;
/// One day of virtual time.
pub const DAY: Nanos = 24 * HOUR;

/// What happens once a limit is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardAction {
    /// Only an alert.
    Alert,
    /// New requests go to the cheapest model of their chain.
    Downgrade,
    /// New requests fail at once.
    Reject,
}

/// Cost guard settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostGuardConfig {
    /// Spend per hour window.
    pub hourly: Option<NanoUsd>,
    /// Spend per day window.
    pub daily: Option<NanoUsd>,
    /// Alert thresholds on total spend, ascending.
    pub alerts: Vec<NanoUsd>,
    /// At a limit.
    pub action: GuardAction,
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertKind {
    /// Total spend crossed a threshold.
    CostThreshold,
    /// The hour's limit was reached.
    HourlyLimit,
    /// The day's limit was reached.
    DailyLimit,
}

impl AlertKind {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::CostThreshold => "cost_threshold",
            Self::HourlyLimit => "hourly_limit",
            Self::DailyLimit => "daily_limit",
        }
    }
}

/// An alert: what, and the amount it is about (the threshold or the limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alert {
    /// What.
    pub kind: AlertKind,
    /// The threshold or limit crossed.
    pub amount: NanoUsd,
    /// Spend it was measured on (total, or the window's).
    pub spent: NanoUsd,
}

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    index: u64,
    spent: NanoUsd,
    alerted: bool,
}

impl Window {
    fn roll(&mut self, now: Nanos, len: Nanos) {
        let i = now / len;
        if i != self.index {
            *self = Self {
                index: i,
                ..Self::default()
            };
        }
    }
}

/// One client's guard.
#[derive(Clone, Debug)]
pub struct CostGuard {
    cfg: CostGuardConfig,
    total: NanoUsd,
    next_alert: usize,
    hour: Window,
    day: Window,
}

impl CostGuard {
    /// A guard that has seen no spend.
    pub fn new(cfg: CostGuardConfig) -> Self {
        Self {
            cfg,
            total: NanoUsd::ZERO,
            next_alert: 0,
            hour: Window::default(),
            day: Window::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CostGuardConfig {
        &self.cfg
    }

    fn roll(&mut self, now: Nanos) {
        self.hour.roll(now, HOUR);
        self.day.roll(now, DAY);
    }

    /// `cost` was billed at `now`; alerts it raises go to `alert`.
    pub fn on_spend(&mut self, now: Nanos, cost: NanoUsd, mut alert: impl FnMut(Alert)) {
        if cost == NanoUsd::ZERO {
            return;
        }
        self.roll(now);
        self.total = self.total.saturating_add(cost);
        self.hour.spent = self.hour.spent.saturating_add(cost);
        self.day.spent = self.day.spent.saturating_add(cost);
        while let Some(&t) = self.cfg.alerts.get(self.next_alert) {
            if self.total < t {
                break;
            }
            self.next_alert += 1;
            alert(Alert {
                kind: AlertKind::CostThreshold,
                amount: t,
                spent: self.total,
            });
        }
        for (w, limit, kind) in [
            (&mut self.hour, self.cfg.hourly, AlertKind::HourlyLimit),
            (&mut self.day, self.cfg.daily, AlertKind::DailyLimit),
        ] {
            if let Some(l) = limit {
                if !w.alerted && w.spent >= l {
                    w.alerted = true;
                    alert(Alert {
                        kind,
                        amount: l,
                        spent: w.spent,
                    });
                }
            }
        }
    }

    /// Whether a limit has been reached in the current windows.
    pub fn at_limit(&mut self, now: Nanos) -> bool {
        self.roll(now);
        self.cfg.hourly.is_some_and(|l| self.hour.spent >= l)
            || self.cfg.daily.is_some_and(|l| self.day.spent >= l)
    }

    /// Total spend seen.
    pub fn total(&self) -> NanoUsd {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const USD: u64 = 1_000_000_000;

    fn guard(hourly: Option<u64>, daily: Option<u64>, alerts: &[u64]) -> CostGuard {
        CostGuard::new(CostGuardConfig {
            hourly: hourly.map(|u| NanoUsd(u * USD)),
            daily: daily.map(|u| NanoUsd(u * USD)),
            alerts: alerts.iter().map(|&u| NanoUsd(u * USD)).collect(),
            action: GuardAction::Reject,
        })
    }

    fn spend(g: &mut CostGuard, now: Nanos, usd: u64) -> Vec<Alert> {
        let mut out = Vec::new();
        g.on_spend(now, NanoUsd(usd * USD), |a| out.push(a));
        out
    }

    #[test]
    fn thresholds_fire_once_each_in_order() {
        let mut g = guard(None, None, &[10, 50, 100]);
        assert!(spend(&mut g, 0, 9).is_empty());
        let a = spend(&mut g, SECS, 60);
        assert_eq!(
            a.iter().map(|a| a.amount.0 / USD).collect::<Vec<_>>(),
            [10, 50]
        );
        assert!(a.iter().all(|a| a.kind == AlertKind::CostThreshold));
        assert!(spend(&mut g, 2 * SECS, 30).is_empty());
        assert_eq!(spend(&mut g, 3 * SECS, 1).len(), 1);
        assert!(
            spend(&mut g, 4 * SECS, 1000).is_empty(),
            "nothing fires twice"
        );
    }

    #[test]
    fn the_hourly_limit_resets_with_the_next_hour() {
        let mut g = guard(Some(5), None, &[]);
        assert!(spend(&mut g, 0, 4).is_empty());
        assert!(!g.at_limit(SECS));
        let a = spend(&mut g, 10 * SECS, 1);
        assert_eq!(a[0].kind, AlertKind::HourlyLimit);
        assert!(g.at_limit(HOUR - 1));
        assert!(spend(&mut g, 20 * SECS, 5).is_empty(), "once per window");
        assert!(!g.at_limit(HOUR), "a new hour");
        assert_eq!(spend(&mut g, HOUR + 1, 5).len(), 1);
    }

    #[test]
    fn the_daily_limit_spans_hours() {
        let mut g = guard(Some(100), Some(10), &[]);
        for h in 0..9 {
            spend(&mut g, h * HOUR, 1);
        }
        assert!(!g.at_limit(9 * HOUR));
        let a = spend(&mut g, 9 * HOUR, 1);
        assert_eq!(a[0].kind, AlertKind::DailyLimit);
        assert!(g.at_limit(23 * HOUR));
        assert!(!g.at_limit(DAY));
    }

    proptest! {
        /// Each threshold fires exactly once, in ascending order, at the
        /// first spend that reaches it; each limit at most once per window.
        #[test]
        fn alerts_fire_once(
            spends in proptest::collection::vec((0u64..600, 0u64..5 * USD), 1..300),
        ) {
            let thresholds = [1, 5, 20, 100];
            let mut g = guard(Some(3), Some(30), &thresholds);
            let mut fired = Vec::new();
            let mut now = 0;
            let mut total = 0u64;
            let mut limit_alerts = std::collections::BTreeMap::new();
            for (dt, cost) in spends {
                now += dt * SECS * 10;
                total += cost;
                g.on_spend(now, NanoUsd(cost), |a| match a.kind {
                    AlertKind::CostThreshold => fired.push((a.amount.0, total)),
                    AlertKind::HourlyLimit => *limit_alerts.entry((0, now / HOUR)).or_insert(0) += 1,
                    AlertKind::DailyLimit => *limit_alerts.entry((1, now / DAY)).or_insert(0) += 1,
                });
            }
            let want: Vec<u64> = thresholds.iter().map(|t| t * USD).filter(|&t| t <= total).collect();
            prop_assert_eq!(fired.iter().map(|f| f.0).collect::<Vec<_>>(), want);
            prop_assert!(fired.iter().all(|&(t, spent)| spent >= t));
            prop_assert!(limit_alerts.values().all(|&n| n == 1));
            prop_assert_eq!(g.total().0, total);
        }
    }
}
