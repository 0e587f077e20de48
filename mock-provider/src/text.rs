//! The text of an answer: `n` tokens of filler words, shaped as the body
//! kind says when the client asked for JSON.
//!
//! Every token is one six-byte word ("lorem "), so the bytes of tokens
//! `a..b` are found by arithmetic and a stream can send any range of them
//! without building token lists. A JSON answer wraps the words in
//! `{"answer": "..."}`; the malformed kinds are the ways a model breaks
//! that: a markdown fence around it, the object cut short, a missing
//! `answer` field, or plain text.

use stormglass::wire::BodyKind;

const WORDS: [&str; 8] = [
    "lorem ", "ipsum ", "dolor ", "sitam ", "conse ", "adipi ", "elits ", "seddo ",
];
const WORD: usize = 6;

/// The text of one answer.
#[derive(Debug, Clone)]
pub(crate) struct Text {
    text: String,
    prefix: usize,
    tokens: u32,
}

impl Text {
    /// `tokens` tokens of body `kind` (`json`: the client asked for JSON;
    /// otherwise the text is plain words whatever the kind).
    pub(crate) fn new(kind: BodyKind, json: bool, tokens: u32) -> Self {
        let (prefix, suffix) = if json {
            match kind {
                BodyKind::Valid => ("{\"answer\": \"", "\"}"),
                BodyKind::Fenced => ("```json\n{\"answer\": \"", "\"}\n```"),
                BodyKind::Truncated => ("{\"answer\": \"", ""),
                BodyKind::MissingFields => ("{\"text\": \"", "\"}"),
                BodyKind::PlainText => ("", ""),
            }
        } else {
            ("", "")
        };
        let tokens = tokens.max(1);
        let mut text = String::with_capacity(prefix.len() + WORD * tokens as usize + suffix.len());
        text.push_str(prefix);
        for i in 0..tokens as usize {
            text.push_str(WORDS[i % WORDS.len()]);
        }
        // No space after the last word.
        text.pop();
        text.push_str(suffix);
        Self {
            text,
            prefix: prefix.len(),
            tokens,
        }
    }

    /// The whole text.
    pub(crate) fn all(&self) -> &str {
        &self.text
    }

    /// Tokens `from..to` (the first carries the JSON opening, the last the
    /// closing).
    pub(crate) fn range(&self, from: u32, to: u32) -> &str {
        let to = to.min(self.tokens);
        if from >= to {
            return "";
        }
        let start = if from == 0 {
            0
        } else {
            self.prefix + WORD * from as usize
        };
        let end = if to == self.tokens {
            self.text.len()
        } else {
            self.prefix + WORD * to as usize
        };
        &self.text[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_put_the_text_back_together() {
        for kind in BodyKind::ALL {
            for json in [false, true] {
                let t = Text::new(kind, json, 7);
                let mut joined = String::new();
                for (a, b) in [(0, 2), (2, 3), (3, 7)] {
                    joined.push_str(t.range(a, b));
                }
                assert_eq!(joined, t.all());
            }
        }
    }

    #[test]
    fn the_kinds_break_json_as_named() {
        let parse = |k| serde_json::from_str::<serde_json::Value>(Text::new(k, true, 5).all());
        let valid = parse(BodyKind::Valid).expect("valid JSON");
        assert!(valid["answer"].is_string());
        assert!(parse(BodyKind::Truncated).is_err());
        assert!(parse(BodyKind::Fenced).is_err());
        assert!(parse(BodyKind::PlainText).is_err());
        let missing = parse(BodyKind::MissingFields).expect("JSON");
        assert!(missing.get("answer").is_none());
        assert!(Text::new(BodyKind::Fenced, true, 3)
            .all()
            .starts_with("```json"));
    }
}
