//! `passgate reload` and the pid file it reads: `passgate serve` writes its
//! process id to `[server] pid_file` at start and removes it at exit;
//! `passgate reload` sends that process `SIGHUP`, which makes it re-read
//! the config and the certificate (`gateway/reload.rs`).

use std::path::{Path, PathBuf};

use passgate::config::Config;

use super::ConfigArg;

/// The pid file of a running `passgate serve`, removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    /// Write this process's id to `path` (through a temporary file, so a
    /// reader never sees half of it).
    pub fn write(path: &Path) -> Result<PidFile, String> {
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("server.pid_file: cannot write {}: {e}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: another serve may have taken the file over since.
        let ours = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            == Some(std::process::id());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Signal the `passgate serve` named in the config's `[server] pid_file`.
/// The config is validated first: with problems, they are printed and no
/// signal is sent (the serve would refuse that config anyway).
pub fn reload(arg: ConfigArg) -> Result<(), String> {
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let path = config.server.pid_file.ok_or_else(|| {
        format!(
            "{}: [server] pid_file is not set, so there is no running passgate to find",
            arg.config.display()
        )
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "server.pid_file: cannot read {} ({e}); is passgate serve running?",
            path.display()
        )
    })?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|pid| *pid > 1)
        .ok_or_else(|| format!("{} does not hold a process id", path.display()))?;
    hangup(pid)?;
    println!("asked passgate (pid {pid}) to reload; its log says whether the new config was taken");
    Ok(())
}

/// `kill -HUP pid` (the POSIX utility: passgate forbids `unsafe`, and so a
/// direct kill(2)).
#[cfg(unix)]
fn hangup(pid: i32) -> Result<(), String> {
    let out = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .output()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "cannot signal process {pid} (a stale pid file?): {}",
        why.trim()
    ))
}

#[cfg(not(unix))]
fn hangup(_pid: i32) -> Result<(), String> {
    Err("passgate reload needs signals (unix)".to_string())
}
