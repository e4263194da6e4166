//! `[extensibility]`, `[[rules]]` and `[[actions]]`: the scripts' budget and
//! the scripts themselves. Only the config is checked here; the files are
//! read and compiled by `extensibility/` (at start and by
//! `check-config`), which names a syntax error with the same key path.

use super::*;

/// Threads that run scripts when `[extensibility] workers` is not set.
fn default_script_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

pub(super) fn extensibility(
    p: &mut Problems,
    raw: Option<RawExtensibility>,
    rules: Vec<RawRule>,
    actions: Vec<RawAction>,
    env: &dyn Fn(&str) -> Option<String>,
) -> ExtensibilityConfig {
    let defaults = ExtensibilityConfig::default();
    let raw = raw.unwrap_or_default();
    let timeout = p.duration("extensibility.timeout", &raw.timeout, defaults.timeout);
    let memory_limit = match p.parsed(
        "extensibility.memory_limit",
        raw.memory_limit.as_ref().map(parse_size),
    ) {
        Some(n) if n < (1 << 20) => {
            p.add("extensibility.memory_limit", "must be at least 1MiB");
            defaults.memory_limit
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => defaults.memory_limit,
    };
    let workers = p.positive(
        "extensibility.workers",
        raw.workers,
        default_script_workers() as u64,
    ) as usize;
    let queue = match raw.queue {
        None => workers * 32,
        Some(n) if n >= 0 => n as usize,
        Some(n) => {
            p.add(
                "extensibility.queue",
                format!("must be zero or more, found {n}"),
            );
            0
        }
    };

    let mut names: Vec<String> = Vec::new();
    let mut out_rules = Vec::new();
    for (i, r) in rules.into_iter().enumerate() {
        let key = format!("rules[{i}]");
        let Some(entry) = entry(p, &key, r.name, r.script, &mut names) else {
            continue;
        };
        if r.enabled.unwrap_or(true) {
            out_rules.push(ScriptConfig {
                values: r.configuration.unwrap_or_default(),
                ..entry
            });
        }
    }
    let mut out_actions = Vec::new();
    for (i, a) in actions.into_iter().enumerate() {
        let key = format!("actions[{i}]");
        // Secrets are checked even when the entry has other problems.
        let secrets = secrets(p, &key, a.secrets, a.secrets_env, env);
        let Some(entry) = entry(p, &key, a.name, a.script, &mut names) else {
            continue;
        };
        if a.enabled.unwrap_or(true) {
            out_actions.push(ScriptConfig {
                values: secrets,
                ..entry
            });
        }
    }
    ExtensibilityConfig {
        timeout,
        memory_limit,
        workers,
        queue,
        rules: out_rules,
        actions: out_actions,
    }
}

/// An action's `secrets`, with `secrets_env` read from the environment.
fn secrets(
    p: &mut Problems,
    key: &str,
    given: Option<BTreeMap<String, String>>,
    from_env: Option<BTreeMap<String, String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    let mut secrets = given.unwrap_or_default();
    for (name, var) in from_env.unwrap_or_default() {
        if secrets.contains_key(&name) {
            p.add(
                format!("{key}.secrets_env.{name}"),
                "is also in `secrets`; give it once",
            );
            continue;
        }
        match env(&var) {
            Some(v) => {
                secrets.insert(name, v);
            }
            None => p.add(
                format!("{key}.secrets_env.{name}"),
                format!("the environment variable {var} is not set"),
            ),
        }
    }
    secrets
}

/// The name and script of one entry, checked; names are unique across rules and actions.
fn entry(
    p: &mut Problems,
    key: &str,
    name: Option<String>,
    script: Option<String>,
    names: &mut Vec<String>,
) -> Option<ScriptConfig> {
    let name = match name.filter(|n| !n.trim().is_empty()) {
        Some(n) if names.contains(&n) => {
            p.add(
                format!("{key}.name"),
                format!("\"{n}\" is used twice; names tell scripts apart in logs"),
            );
            None
        }
        Some(n) => {
            names.push(n.clone());
            Some(n)
        }
        None => {
            p.add(format!("{key}.name"), "missing; a name for logs and errors");
            None
        }
    };
    let script = match script.filter(|s| !s.trim().is_empty()) {
        Some(s) => Some(PathBuf::from(s)),
        None => {
            p.add(
                format!("{key}.script"),
                "missing; the path of the JavaScript file",
            );
            None
        }
    };
    Some(ScriptConfig {
        name: name?,
        script: script?,
        key: key.to_string(),
        values: BTreeMap::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::Config;

    #[test]
    fn scripts_and_budget_are_read_with_defaults() {
        let c = Config::from_toml_with_env(
            r#"
            [extensibility]
            timeout = "500ms"
            [[rules]]
            name = "a"
            script = "a.js"
            [rules.configuration]
            K = "v"
            [[rules]]
            name = "off"
            script = "off.js"
            enabled = false
            [[actions]]
            name = "b"
            script = "b.js"
            secrets = { A = "1" }
            secrets_env = { B = "VAR_B" }
            "#,
            &|v| (v == "VAR_B").then(|| "2".to_string()),
        )
        .map_err(|e| e.to_string())
        .unwrap();
        let x = &c.extensibility;
        assert_eq!(x.timeout, std::time::Duration::from_millis(500));
        assert_eq!(x.memory_limit, 32 << 20);
        assert_eq!(x.rules.len(), 1);
        assert_eq!(x.rules[0].values["K"], "v");
        assert_eq!(x.actions[0].values["A"], "1");
        assert_eq!(x.actions[0].values["B"], "2");
        assert_eq!(x.actions[0].key, "actions[0]");
    }

    #[test]
    fn every_problem_is_named() {
        let e = Config::from_toml_with_env(
            r#"
            [extensibility]
            timeout = "0s"
            memory_limit = "10KiB"
            [[rules]]
            script = "a.js"
            [[actions]]
            name = "x"
            [[actions]]
            name = "x"
            script = "b.js"
            secrets_env = { K = "NOPE" }
            "#,
            &|_| None,
        )
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        for want in [
            "extensibility.timeout: must be longer than zero",
            "extensibility.memory_limit: must be at least 1MiB",
            "rules[0].name: missing",
            "actions[0].script: missing",
            "actions[1].name: \"x\" is used twice",
            "actions[1].secrets_env.K: the environment variable NOPE is not set",
        ] {
            assert!(e.iter().any(|p| p.starts_with(want)), "{want} in {e:?}");
        }
    }
}
