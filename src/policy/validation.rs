//! Output validation: whether an answer's body is what the request asked
//! for, and what to do when it is not.
//!
//! A 200 is not an answer when the caller needs JSON and gets prose, a
//! markdown fence around the JSON, an object without its fields, or a body
//! cut short. Structured-output libraries (Instructor's retries on
//! validation errors, LangChain's output-fixing parsers) retry or repair; a
//! gateway can fall back to another model; a product may prefer a safe
//! default answer to an error. The rule here, for requests that need JSON:
//!
//! - a valid body is accepted;
//! - a fenced body is accepted with its fence stripped, unless
//!   `accept_fenced` is off;
//! - any other body (missing fields, truncated, plain text) is a `malformed`
//!   failure: retried, sent down the fallback chain or failed, as the
//!   strategy's `on.malformed` says (default: fallback);
//! - with `safe_default`, a request that would end failed as `malformed`
//!   is answered with the strategy's safe default instead (it counts as a
//!   success, and as a safe default).
//!
//! Requests that do not need JSON accept any body but a truncated one.
//! Every complete answer to a measured JSON request is counted by kind.

use crate::wire::BodyKind;

/// Validation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidationConfig {
    /// Strip a markdown fence and accept the JSON inside.
    pub accept_fenced: bool,
    /// Answer a request that would fail as malformed with a safe default.
    pub safe_default: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            accept_fenced: true,
            safe_default: false,
        }
    }
}

impl ValidationConfig {
    /// Whether a client accepts `body` for a request that does or does not
    /// need JSON.
    pub fn accepts(self, body: BodyKind, json: bool) -> bool {
        match body {
            BodyKind::Valid => true,
            BodyKind::Fenced => self.accept_fenced || !json,
            BodyKind::MissingFields | BodyKind::PlainText => !json,
            BodyKind::Truncated => false,
        }
    }
}

/// Complete answers to JSON requests, by body kind, and safe defaults given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidationCounts {
    /// Valid JSON.
    pub valid: u64,
    /// JSON in a markdown fence.
    pub fenced: u64,
    /// JSON without the required fields.
    pub missing_fields: u64,
    /// Cut short.
    pub truncated: u64,
    /// Prose.
    pub plain_text: u64,
    /// Requests answered with the safe default.
    pub safe_defaults: u64,
}

impl ValidationCounts {
    /// One answer's body.
    pub fn record(&mut self, body: BodyKind) {
        let c = match body {
            BodyKind::Valid => &mut self.valid,
            BodyKind::Fenced => &mut self.fenced,
            BodyKind::MissingFields => &mut self.missing_fields,
            BodyKind::Truncated => &mut self.truncated,
            BodyKind::PlainText => &mut self.plain_text,
        };
        *c += 1;
    }

    /// Adds another replica's counts.
    pub fn merge(&mut self, o: &Self) {
        self.valid += o.valid;
        self.fenced += o.fenced;
        self.missing_fields += o.missing_fields;
        self.truncated += o.truncated;
        self.plain_text += o.plain_text;
        self.safe_defaults += o.safe_defaults;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_requests_take_valid_and_fenced_bodies_only() {
        let c = ValidationConfig::default();
        for (body, json_ok, text_ok) in [
            (BodyKind::Valid, true, true),
            (BodyKind::Fenced, true, true),
            (BodyKind::MissingFields, false, true),
            (BodyKind::PlainText, false, true),
            (BodyKind::Truncated, false, false),
        ] {
            assert_eq!(c.accepts(body, true), json_ok, "{body:?}");
            assert_eq!(c.accepts(body, false), text_ok, "{body:?}");
        }
        let strict = ValidationConfig {
            accept_fenced: false,
            ..c
        };
        assert!(!strict.accepts(BodyKind::Fenced, true));
        assert!(strict.accepts(BodyKind::Fenced, false));
    }

    #[test]
    fn counts_by_kind() {
        let mut n = ValidationCounts::default();
        for b in BodyKind::ALL {
            n.record(b);
        }
        n.record(BodyKind::Fenced);
        let mut m = ValidationCounts::default();
        m.merge(&n);
        assert_eq!(
            (
                m.valid,
                m.fenced,
                m.missing_fields,
                m.truncated,
                m.plain_text
            ),
            (1, 2, 1, 1, 1)
        );
    }
}
