//! `passgate actions try`: one rule or action run on this thread against a
//! real user and a synthetic request, with nothing issued or written.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::cache::ScriptCache;
use super::decision::{self, Verdict};
use super::facts::LoginFacts;
use super::host::Host;
use super::source::{Kind, Source};
use super::{ScriptError, strings};
use crate::config::{ExtensibilityConfig, ScriptConfig};

/// A script to try: `file` as given, with the `configuration` or `secrets`
/// of the configured entry for the same file (if any), then `extra` values.
pub fn script_for(
    config: &ExtensibilityConfig,
    file: &Path,
    extra: &[(String, String)],
) -> Result<Source, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read the script: {e}", file.display()))?;
    let kind = Kind::of(&text);
    let same = |c: &&ScriptConfig| {
        c.script == file
            || matches!((c.script.canonicalize(), file.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    let configured = match kind {
        Kind::Rule => config.rules.iter().find(same),
        Kind::Action => config.actions.iter().find(same),
    };
    let mut values = configured.map(|c| c.values.clone()).unwrap_or_default();
    values.extend(extra.iter().cloned());
    Ok(Source {
        name: configured.map_or_else(|| file.display().to_string(), |c| c.name.clone()),
        key: configured.map_or_else(|| "script".to_string(), |c| c.key.clone()),
        path: file.to_path_buf(),
        kind,
        text,
        values,
    })
}

/// Compile `source` and run it once on `facts`, within the configured budget.
pub fn run_once(
    config: &ExtensibilityConfig,
    source: Source,
    facts: &LoginFacts,
    api_scopes: &[String],
) -> Result<Verdict, ScriptError> {
    let mut host = Host::build(
        &[source],
        config.memory_limit,
        Arc::new(ScriptCache::default()),
        super::host::compile_deadline(config.timeout),
    )
    .map_err(|p| ScriptError::Failed(super::Failure::Engine(strings(p).join("; "))))?;
    let input = serde_json::to_string(facts)
        .map_err(|e| ScriptError::Failed(super::Failure::Engine(e.to_string())))?;
    let json = host.run(&input, Instant::now() + config.timeout)?;
    decision::read(&json, &facts.scopes, api_scopes)
        .map_err(|e| ScriptError::Failed(super::Failure::Engine(e)))
}
