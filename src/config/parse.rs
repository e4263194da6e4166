//! The config file's text → [`RawConfig`], with every unknown key and every
//! type error collected, not just the first.
//!
//! serde stops at the first error, so parsing repeats: the error is recorded
//! with its key path and the line and column where the file has it, the key it
//! names is taken out of the parsed document, and the rest is read again. What
//! remains goes on to validation, so `bogus_key = 1` beside
//! `upstream = "not a url"` reports both. Validation problems under a key that
//! was taken out are dropped: that key already has its problem. A TOML syntax
//! error stops everything, since nothing after it can be trusted.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, Deserializer};
use toml::{Spanned, de::DeString};

use super::ConfigErrors;
use super::raw::RawConfig;

/// At most this many unknown keys and type errors are collected before giving up.
const MAX_PROBLEMS: usize = 100;

/// A parsed file: what could be read, what could not, and the key paths taken out.
pub(super) struct Parsed {
    /// The file, less the keys named in `problems`.
    pub raw: RawConfig,
    /// Unknown keys and type errors, each as `key.path: message (line L, column C)`.
    pub problems: Vec<String>,
    /// The key paths taken out, e.g. `routes[0].upstream`.
    pub removed: Vec<String>,
}

/// True when a validation problem lies under one of the `removed` key paths
/// (that key's own problem was reported already).
pub(super) fn covered(removed: &[String], problem: &str) -> bool {
    removed.iter().any(|path| {
        problem
            .strip_prefix(path.as_str())
            .is_some_and(|rest| rest.starts_with([':', '.', '[']))
    })
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Read `text` into a [`RawConfig`], collecting every unknown key and type error.
pub(super) fn parse(text: &str) -> Result<Parsed, ConfigErrors> {
    let mut doc = DeTable::parse(text).map_err(|e| ConfigErrors(vec![describe(&e, text, None)]))?;
    let mut problems = Vec::new();
    let mut removed = Vec::new();
    loop {
        let err = match RawConfig::deserialize(Deserializer::from(doc.clone())) {
            Ok(raw) => {
                return Ok(Parsed {
                    raw,
                    problems,
                    removed,
                });
            }
            Err(e) => e,
        };
        let path = err
            .span()
            .and_then(|span| path_at(doc.get_ref(), span.start))
            .filter(|p| !p.is_empty());
        let Some(mut path) = path else {
            // Nowhere to point: report it and stop, as nothing can be taken out.
            problems.push(describe(&err, text, None));
            return Err(ConfigErrors(problems));
        };
        problems.push(describe(&err, text, Some(&path)));
        // Taking out one element would renumber the rest; take out the whole list.
        while matches!(path.last(), Some(Step::Index(_))) && path.len() > 1 {
            path.pop();
        }
        if !remove(doc.get_mut(), &path) || problems.len() >= MAX_PROBLEMS {
            return Err(ConfigErrors(problems));
        }
        removed.push(render(&path));
    }
}

/// A TOML error as one problem line: the key path when known, and always the
/// line and column in the file.
fn describe(e: &toml::de::Error, text: &str, path: Option<&[Step]>) -> String {
    let msg = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return format!("TOML error: {msg}");
    };
    let (line, column) = line_column(text, span.clone());
    let path = match path {
        Some(p) => Some(render(p)),
        None => DeTable::parse(text)
            .ok()
            .and_then(|doc| path_at(doc.get_ref(), span.start))
            .map(|p| render(&p)),
    };
    match path.filter(|p| !p.is_empty()) {
        Some(key) => format!("{key}: {msg} (line {line}, column {column})"),
        None => format!("line {line}, column {column}: {msg}"),
    }
}

fn line_column(text: &str, span: Range<usize>) -> (usize, usize) {
    let at = span.start.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// The key path of the key or value at byte `at`, e.g. `routes[1].methods.POST`.
fn path_at(table: &DeTable<'_>, at: usize) -> Option<Vec<Step>> {
    for (key, value) in table.iter() {
        let here = Step::Key(key.get_ref().to_string());
        if key.span().contains(&at) {
            return Some(vec![here]);
        }
        if let Some(mut inner) = path_in_value(value.get_ref(), at) {
            inner.insert(0, here);
            return Some(inner);
        }
        if value.span().contains(&at) {
            return Some(vec![here]);
        }
    }
    None
}

/// The rest of a key path below `value`, when `at` lies inside it.
fn path_in_value(value: &DeValue<'_>, at: usize) -> Option<Vec<Step>> {
    match value {
        DeValue::Table(table) => path_at(table, at),
        DeValue::Array(items) => {
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| match path_in_value(item.get_ref(), at) {
                    Some(mut inner) => {
                        inner.insert(0, Step::Index(i));
                        Some(inner)
                    }
                    None if item.span().contains(&at) => Some(vec![Step::Index(i)]),
                    None => None,
                })
        }
        _ => None,
    }
}

/// Take the key at `path` out of `table`; false when there is no such key.
fn remove(table: &mut DeTable<'_>, path: &[Step]) -> bool {
    let Some((Step::Key(first), rest)) = path.split_first() else {
        return false;
    };
    let Some(key) = find_key(table, first) else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(&key).is_some();
    }
    match table.get_mut(&key) {
        Some(value) => remove_in(value.get_mut(), rest),
        None => false,
    }
}

fn remove_in(value: &mut DeValue<'_>, path: &[Step]) -> bool {
    match (value, path.first()) {
        (DeValue::Table(table), Some(Step::Key(_))) => remove(table, path),
        (DeValue::Array(items), Some(Step::Index(i))) => match items.get_mut(*i) {
            Some(item) => remove_in(item.get_mut(), &path[1..]),
            None => false,
        },
        _ => false,
    }
}

fn find_key<'i>(table: &DeTable<'i>, name: &str) -> Option<Spanned<DeString<'i>>> {
    table.keys().find(|k| k.get_ref().as_ref() == name).cloned()
}

/// A key path as written in problems: `routes[1].methods.POST`, quoting keys
/// that TOML would quote.
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key_segment(key));
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A key as written in a key path: bare when TOML allows, else quoted.
fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(p) => p.problems,
            Err(e) => e.0,
        }
    }

    #[test]
    fn every_unknown_key_and_type_error_is_reported() {
        let text = "bogus_key = 1\n\
                    [server]\nlsiten = \"x\"\nmax_connections = \"many\"\n\
                    [[routes]]\nprefix = 5\nupstream = \"http://127.0.0.1:1\"\n\
                    [[routes]]\nprefix = \"/b/\"\nscopes = [1]\nextra = true\n";
        let got = problems(text);
        let want = [
            "bogus_key: unknown field `bogus_key`",
            "server.lsiten: unknown field `lsiten`",
            "server.max_connections: invalid type: string \"many\", expected i64",
            "routes[0].prefix: invalid type: integer `5`, expected a string",
            "routes[1].scopes[0]: invalid type: integer `1`, expected a string",
            "routes[1].extra: unknown field `extra`",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for w in want {
            assert!(
                got.iter().any(|g| g.starts_with(w)),
                "{w:?} not in {got:#?}"
            );
        }
        assert!(
            got.iter()
                .any(|g| g.starts_with("bogus_key:") && g.ends_with("(line 1, column 1)")),
            "{got:#?}"
        );
    }

    #[test]
    fn removed_keys_cover_their_validation_problems() {
        let parsed = match parse("[[routes]]\nprefix = 5\n") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(parsed.removed, vec!["routes[0].prefix".to_string()]);
        assert!(covered(&parsed.removed, "routes[0].prefix: missing"));
        assert!(!covered(&parsed.removed, "routes[0].prefixes: x"));
        assert!(!covered(&parsed.removed, "routes[1].prefix: missing"));
    }

    #[test]
    fn a_syntax_error_stops_at_once() {
        let got = problems("[server\nlisten = 1\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].contains("line 1"), "{got:#?}");
    }

    #[test]
    fn quoted_keys_keep_their_quotes() {
        let got = problems("[routes.methods]\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        let got = problems("[server]\n\"odd key\" = 1\n");
        assert!(
            got[0].starts_with("server.\"odd key\": unknown field"),
            "{got:#?}"
        );
    }
}
