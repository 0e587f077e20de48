//! Reading a scenario file and its includes, and merging them.
//!
//! Includes are read first, depth first, paths relative to the including
//! file; then the main file. `[[provider]]`, `[[incident]]` and
//! `[[strategy]]` entries are concatenated in that order; `[prices]` entries
//! of later files replace earlier ones; `[run]` and `[traffic]` come from the
//! main file, or else from the last include that has them.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{closest, ScenarioError};
use super::schema::{
    ExpectSection, IncidentSection, Price, ProviderSection, RunSection, ScenarioFile, SloSection,
    StrategySection, TrafficSection,
};

/// Index of a source file in [`Sources`].
pub type FileId = usize;

/// The text of every file read, so that any span can be turned into a line.
#[derive(Debug, Default)]
pub struct Sources {
    /// (path, text) per file.
    pub files: Vec<(PathBuf, String)>,
}

impl Sources {
    /// An error at `span` of file `id`.
    pub fn error(
        &self,
        id: FileId,
        span: std::ops::Range<usize>,
        msg: impl Into<String>,
    ) -> ScenarioError {
        let (path, text) = &self.files[id];
        ScenarioError::at(path, text, span, msg)
    }

    /// An error about a spanned value.
    pub fn error_at<T>(&self, id: FileId, v: &Spanned<T>, msg: impl Into<String>) -> ScenarioError {
        self.error(id, v.span(), msg)
    }
}

/// All files merged, each entry remembering the file it came from.
#[derive(Debug, Default)]
pub struct Merged {
    /// `[run]` and its file.
    pub run: Option<(FileId, RunSection)>,
    /// Price table.
    pub prices: std::collections::BTreeMap<String, Price>,
    /// Providers.
    pub providers: Vec<(FileId, Spanned<ProviderSection>)>,
    /// Incidents.
    pub incidents: Vec<(FileId, Spanned<IncidentSection>)>,
    /// `[traffic]` and its file.
    pub traffic: Option<(FileId, TrafficSection)>,
    /// Strategies.
    pub strategies: Vec<(FileId, Spanned<StrategySection>)>,
    /// `[slo]` and its file (taken whole, like `[run]`).
    pub slo: Option<(FileId, Spanned<SloSection>)>,
    /// `[[expect]]` entries, concatenated.
    pub expect: Vec<(FileId, Spanned<ExpectSection>)>,
}

const MAX_DEPTH: usize = 8;

/// Reads `path` and its includes.
pub fn read(path: &Path) -> Result<(Sources, Merged), ScenarioError> {
    let mut sources = Sources::default();
    let mut merged = Merged::default();
    let mut stack = Vec::new();
    read_into(path, &mut sources, &mut merged, &mut stack, None)?;
    Ok((sources, merged))
}

/// Reads a scenario given as text (tests, stdin); includes are relative to
/// the current directory.
pub fn read_str(name: &Path, text: &str) -> Result<(Sources, Merged), ScenarioError> {
    let mut sources = Sources::default();
    let mut merged = Merged::default();
    let mut stack = Vec::new();
    read_into(
        name,
        &mut sources,
        &mut merged,
        &mut stack,
        Some(text.to_owned()),
    )?;
    Ok((sources, merged))
}

fn read_into(
    path: &Path,
    sources: &mut Sources,
    merged: &mut Merged,
    stack: &mut Vec<PathBuf>,
    text: Option<String>,
) -> Result<(), ScenarioError> {
    let text = match text {
        Some(t) => t,
        None => std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::file(path, format!("cannot read the file: {e}")))?,
    };
    let file: ScenarioFile = toml::from_str(&text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_owned();
        let hint = toml_hint(&msg);
        let err = ScenarioError::at(path, &text, span, msg);
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    })?;
    let id = sources.files.len();
    sources.files.push((path.to_owned(), text));
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    stack.push(canonical);

    for inc in &file.include {
        let base = path.parent().unwrap_or(Path::new("."));
        let inc_path = base.join(inc.get_ref());
        let canon = inc_path.canonicalize().unwrap_or_else(|_| inc_path.clone());
        if stack.contains(&canon) {
            return Err(sources
                .error_at(
                    id,
                    inc,
                    format!("include cycle: `{}` includes itself", inc.get_ref()),
                )
                .hint(
                    "an included file must not include, directly or not, a file that includes it",
                ));
        }
        if stack.len() >= MAX_DEPTH {
            return Err(sources.error_at(
                id,
                inc,
                format!("includes nested deeper than {MAX_DEPTH}"),
            ));
        }
        if !inc_path.exists() {
            return Err(sources
                .error_at(
                    id,
                    inc,
                    format!("included file `{}` does not exist", inc_path.display()),
                )
                .hint("include paths are relative to the file that includes them"));
        }
        read_into(&inc_path, sources, merged, stack, None)?;
    }
    stack.pop();

    if let Some(run) = file.run {
        merged.run = Some((id, run));
    }
    merged.prices.extend(file.prices);
    merged
        .providers
        .extend(file.provider.into_iter().map(|p| (id, p)));
    merged
        .incidents
        .extend(file.incident.into_iter().map(|p| (id, p)));
    if let Some(t) = file.traffic {
        merged.traffic = Some((id, t));
    }
    merged
        .strategies
        .extend(file.strategy.into_iter().map(|p| (id, p)));
    if let Some(slo) = file.slo {
        merged.slo = Some((id, slo));
    }
    merged
        .expect
        .extend(file.expect.into_iter().map(|p| (id, p)));
    Ok(())
}

fn toml_hint(msg: &str) -> Option<String> {
    // "unknown field `x`, expected one of `a`, `b`": the closest of a, b.
    let close = || {
        let mut names = msg.split('`').skip(1).step_by(2);
        let name = names.next().unwrap_or_default();
        closest(name, names)
    };
    if msg.starts_with("unknown field") {
        Some(match close() {
            Some(k) => {
                format!("did you mean `{k}`? the README's scenario reference lists every key")
            }
            None => "check the spelling; the README's scenario reference lists every key".into(),
        })
    } else if msg.starts_with("missing field") {
        Some("this key has no default; add it".into())
    } else if msg.starts_with("unknown variant") {
        Some(match close() {
            Some(k) => format!("did you mean `{k}`?"),
            None => "use one of the listed values".into(),
        })
    } else if msg.starts_with("invalid type") {
        Some("durations are strings (\"250ms\"), rates and probabilities are numbers".into())
    } else {
        None
    }
}
