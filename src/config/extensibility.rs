//! `[extensibility]` and the `[[rules]]` and `[[actions]]` it runs (validated
//! in `validate/extensibility.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// `[extensibility]` with the `[[rules]]` and `[[actions]]` it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensibilityConfig {
    /// Wall-clock budget of one login's whole script chain.
    pub timeout: std::time::Duration,
    /// Memory limit of each JavaScript runtime, in bytes.
    pub memory_limit: usize,
    /// Threads that run scripts (each owns one runtime).
    pub workers: usize,
    /// Script chains that may wait for a worker; more are refused with a 503.
    pub queue: usize,
    /// Enabled rules, in file order.
    pub rules: Vec<ScriptConfig>,
    /// Enabled actions, in file order.
    pub actions: Vec<ScriptConfig>,
}

impl Default for ExtensibilityConfig {
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(2),
            memory_limit: 32 << 20,
            workers: 2,
            queue: 64,
            rules: Vec::new(),
            actions: Vec::new(),
        }
    }
}

impl ExtensibilityConfig {
    /// Whether any script runs on a login.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.actions.is_empty()
    }
}

/// One `[[rules]]` or `[[actions]]` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Its name, in logs and errors.
    pub name: String,
    /// The script file, as written in the config.
    pub script: PathBuf,
    /// Its key path in the config (`rules[0]`), for errors.
    pub key: String,
    /// A rule's `configuration` global, or an action's `event.secrets`.
    pub values: BTreeMap<String, String>,
}

impl fmt::Debug for ScriptConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: only their names are shown.
        f.debug_struct("ScriptConfig")
            .field("name", &self.name)
            .field("script", &self.script)
            .field("key", &self.key)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}
