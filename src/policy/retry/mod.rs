//! Retries: how many, how long apart, and for which failures.
//!
//! A retry turns a transient failure into a success at the price of extra
//! load on a provider that may be failing *because* of load. The rules here
//! are the ones the official SDKs apply (a few retries, exponential backoff
//! with jitter, `retry-after` honoured, `x-should-retry` obeyed); budgets and
//! throttles that bound the extra load belong to their own modules.
//!
//! - `max_retries` retries per model (default 2, the SDKs' default), then
//!   the fallback chain's next model, if any.
//! - The wait is the backoff's, raised to the provider's `retry-after` when
//!   `honor_retry_after` is set. A `retry-after` beyond `max_retry_after`
//!   (default 60 s, the SDKs' bound) is not waited for: the model is given
//!   up on as if its retries were spent.
//! - `x-should-retry: false` stops retries on that model, `true` retries
//!   even a class that would not be (the SDKs' rule), when honoured.
//! - A retry that could not start before the request's deadline is not made.

pub mod backoff;
pub mod budget;
pub mod classify;

pub use backoff::Backoff;
pub use budget::{BudgetConfig, RetryBudget};
pub use classify::{Classifier, Disposition, FailureClass};
