//! Script files: read once, told apart (rule or action), wrapped so QuickJS
//! can evaluate them, and their compile errors placed at `file:line:col` of
//! the file as written.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rquickjs::CaughtError;

use crate::config::{ExtensibilityConfig, ScriptConfig};

/// Whether a script is a legacy Rule or a post-login Action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `function (user, context, callback) { ... }`
    Rule,
    /// `exports.onExecutePostLogin = async (event, api) => { ... }`
    Action,
}

impl Kind {
    /// An action defines `onExecutePostLogin`; anything else is a rule.
    pub fn of(text: &str) -> Kind {
        if text.contains("onExecutePostLogin") {
            Kind::Action
        } else {
            Kind::Rule
        }
    }
}

/// One script, read from its file.
#[derive(Clone)]
pub struct Source {
    /// The configured name.
    pub name: String,
    /// The config key (`rules[0]`), for errors.
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// Rule or action.
    pub kind: Kind,
    /// The file's text.
    pub text: String,
    /// `configuration` (rules) or `secrets` (actions).
    pub values: BTreeMap<String, String>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A script as QuickJS evaluates it: the file's first line is prefixed, so
/// line numbers are the file's and columns on line 1 are shifted.
#[derive(Debug)]
pub struct Wrapped {
    /// The text to evaluate.
    pub text: String,
    /// Characters added before the file's first line.
    pub shift: usize,
}

const ACTION_HEAD: &str = "(function (exports, module, require) {";

impl Source {
    /// Read a configured script; `kind` as configured (`[[rules]]` or `[[actions]]`).
    pub fn read(c: &ScriptConfig, kind: Kind) -> Result<Source, SyntaxProblem> {
        let text = std::fs::read_to_string(&c.script).map_err(|e| SyntaxProblem {
            key: c.key.clone(),
            text: format!("{}: cannot read the script: {e}", c.script.display()),
        })?;
        Ok(Source {
            name: c.name.clone(),
            key: c.key.clone(),
            path: c.script.clone(),
            kind,
            text,
            values: c.values.clone(),
        })
    }

    /// Every configured script, rules first; every unreadable one is named.
    pub fn all(config: &ExtensibilityConfig) -> Result<Vec<Source>, Vec<SyntaxProblem>> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let listed = config
            .rules
            .iter()
            .map(|r| (r, Kind::Rule))
            .chain(config.actions.iter().map(|a| (a, Kind::Action)));
        for (c, kind) in listed {
            match Source::read(c, kind) {
                Ok(s) => out.push(s),
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// The text QuickJS evaluates: a rule as a function expression, an action
    /// as the body of a CommonJS module function.
    pub fn wrapped(&self) -> Wrapped {
        match self.kind {
            Kind::Rule => {
                let body = self.text.trim_end().trim_end_matches(';');
                Wrapped {
                    text: format!("({body}\n)"),
                    shift: 1,
                }
            }
            Kind::Action => Wrapped {
                text: format!("{ACTION_HEAD}{}\n}})", self.text),
                shift: ACTION_HEAD.len(),
            },
        }
    }
}

/// A script that cannot run, as `check-config` prints it:
/// `rules[0].script: file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxProblem {
    key: String,
    text: String,
}

impl SyntaxProblem {
    /// The engine could not start at all.
    pub fn engine(message: &str) -> SyntaxProblem {
        SyntaxProblem {
            key: "extensibility".into(),
            text: format!("the script engine failed to start: {message}"),
        }
    }

    /// A problem without a position.
    pub fn plain(s: &Source, message: &str) -> SyntaxProblem {
        SyntaxProblem {
            key: s.key.clone(),
            text: format!("{}: {message}", s.path.display()),
        }
    }

    /// An exception from evaluating or compiling `s`, placed in its file.
    pub fn from_caught(s: &Source, w: &Wrapped, e: CaughtError<'_>) -> SyntaxProblem {
        let (message, stack) = match &e {
            CaughtError::Exception(x) => {
                let name: Option<String> = x.get("name").ok();
                let message = x.message().unwrap_or_default();
                let message = match name {
                    Some(n) if !n.is_empty() && n != "Error" => format!("{n}: {message}"),
                    _ => message,
                };
                (message, x.stack().unwrap_or_default())
            }
            CaughtError::Value(v) => (format!("{v:?}"), String::new()),
            CaughtError::Error(err) => (err.to_string(), String::new()),
        };
        let file = s.path.display().to_string();
        let text = match position(&stack, &file) {
            Some((line, col)) => {
                let col = if line == 1 {
                    col.saturating_sub(w.shift).max(1)
                } else {
                    col
                };
                let line = line.min(s.text.lines().count().max(1));
                format!("{file}:{line}:{col}: {message}")
            }
            None => format!("{file}: {message}"),
        };
        SyntaxProblem {
            key: s.key.clone(),
            text,
        }
    }

    /// The config key this problem belongs to (`rules[0]`).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for SyntaxProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key == "extensibility" {
            write!(f, "{}: {}", self.key, self.text)
        } else {
            write!(f, "{}.script: {}", self.key, self.text)
        }
    }
}

/// The first `file:line[:col]` of `file` in a QuickJS stack.
fn position(stack: &str, file: &str) -> Option<(usize, usize)> {
    let at = stack.find(&format!("{file}:"))?;
    let rest = &stack[at + file.len() + 1..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let line: usize = parts.next()?.parse().ok()?;
    let col: usize = rest
        .strip_prefix(&line.to_string())
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(1);
    Some((line, col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_read_from_quickjs_stacks() {
        assert_eq!(
            position("    at rules/a.js:3:14\n", "rules/a.js"),
            Some((3, 14))
        );
        assert_eq!(
            position("    at rules/a.js:7\n", "rules/a.js"),
            Some((7, 1))
        );
        assert_eq!(position("    at other.js:7\n", "rules/a.js"), None);
    }

    #[test]
    fn actions_and_rules_are_told_apart() {
        assert_eq!(
            Kind::of("exports.onExecutePostLogin = async () => {}"),
            Kind::Action
        );
        assert_eq!(
            Kind::of("function (user, context, callback) {}"),
            Kind::Rule
        );
    }
}
