//! Reload without a restart (`SIGHUP`, `passgate reload`): read the config
//! file, the TLS certificate and the signing keys' source (`tokens/live.rs`,
//! which is also read every few seconds) again, validate everything, build the next
//! generation (`generation.rs`), then swap it in: the request handler
//! (routes, upstreams, clients, APIs, realms, trusted issuers and their key
//! sets, scripts, discovery) and the certificate every worker's acceptor
//! presents. Connections and requests in flight keep what they started
//! with; new requests see the new config.
//!
//! A config with problems, a certificate that does not load, a signing key
//! that does not load or a script that does not compile refuses the reload: every problem is logged, the status
//! page shows why, and the running config keeps serving. Settings that need
//! a restart (the listeners, workers, connection settings, store, issuer,
//! passwords, attack protection, MFA, upstream pools, metrics, log format)
//! are named in the log when they differ, and keep their running values.

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Mutex;

use super::generation::Lasting;
use crate::admin::AdminState;
use crate::config::Config;
use crate::service::App;
use crate::tls::{self, CertSlot};

/// Reloads a running gateway's config; clones share it. Reloads run one at
/// a time.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The config being served (restart-only settings as they were at start).
    running: Mutex<Config>,
    app: Arc<App>,
    admin: Arc<AdminState>,
    cert: Arc<CertSlot>,
    lasting: Arc<Lasting>,
}

impl Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    pub(super) fn new(
        path: PathBuf,
        running: Config,
        app: Arc<App>,
        admin: Arc<AdminState>,
        cert: Arc<CertSlot>,
        lasting: Arc<Lasting>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                running: Mutex::new(running),
                app,
                admin,
                cert,
                lasting,
            }),
        }
    }

    /// Read the config file again and, when all of it is valid, serve it.
    /// On error nothing changed; the error names every problem.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let i = &self.inner;
        let mut running = i.running.lock().await;
        let result = self.next(&running).await;
        match result {
            Ok((next, key, handler)) => {
                i.app.replace(handler);
                i.cert.replace(key);
                *running = next;
                i.admin.record_reload(Ok(()));
                let generation = i.admin.config_record().map_or(0, |c| c.generation);
                tracing::info!(
                    path = %i.path.display(),
                    generation,
                    "config reloaded; new requests use it"
                );
                Ok(())
            }
            Err(e) => {
                let reason = format!("{e:#}");
                for line in reason.lines().filter(|l| !l.trim().is_empty()) {
                    tracing::error!(path = %i.path.display(), problem = line.trim(), "reload refused");
                }
                tracing::error!("reload refused; the running config keeps serving");
                i.admin.record_reload(Err(reason));
                Err(e)
            }
        }
    }

    /// Build everything the next config needs, without touching what serves.
    async fn next(
        &self,
        running: &Config,
    ) -> anyhow::Result<(Config, rustls::sign::CertifiedKey, crate::service::Handler)> {
        let i = &self.inner;
        let mut next = Config::load(&i.path)?;
        let kept = keep_restart_only(running, &mut next);
        if !kept.is_empty() {
            tracing::warn!(
                settings = kept.join(", "),
                "these settings changed in the file but take effect only after a restart; the running values stay"
            );
        }
        let key = tls::certified_key(&next.server.tls_cert, &next.server.tls_key)
            .context("the TLS certificate")?;
        if let Some(stack) = &i.lasting.auth {
            stack.refresh_keys().await?;
        }
        let handler = i.lasting.handler(&next).await?;
        Ok((next, key, handler))
    }

    /// Reload on every `SIGHUP` until `stop` completes. The signal is taken
    /// over when this is called (within a runtime), before the returned
    /// future first runs, so a `SIGHUP` right after start-up never falls to
    /// its default action (ending the process). Without signals (not unix)
    /// the future only waits for `stop`.
    pub fn on_sighup(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        #[cfg(unix)]
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        async move {
            #[cfg(unix)]
            {
                let mut hup = match hup {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGHUP; reload is unavailable");
                        stop.await;
                        return;
                    }
                };
                tokio::pin!(stop);
                loop {
                    tokio::select! {
                        _ = &mut stop => return,
                        got = hup.recv() => {
                            if got.is_none() {
                                return;
                            }
                            tracing::info!("SIGHUP: reloading the config");
                            // Refusals are logged and recorded by `reload`.
                            let _ = self.reload().await;
                        }
                    }
                }
            }
            #[cfg(not(unix))]
            stop.await;
        }
    }
}

/// Put the running values of restart-only settings into `next`, and name
/// those that differ.
fn keep_restart_only(running: &Config, next: &mut Config) -> Vec<&'static str> {
    let mut names = Vec::new();
    let (old, new) = (&running.server, &mut next.server);
    keep(&mut names, "server.listen", &old.listen, &mut new.listen);
    keep(
        &mut names,
        "server.admin_listen",
        &old.admin_listen,
        &mut new.admin_listen,
    );
    keep(&mut names, "server.workers", &old.workers, &mut new.workers);
    keep(
        &mut names,
        "server.worker_cpu_affinity",
        &old.worker_cpu_affinity,
        &mut new.worker_cpu_affinity,
    );
    keep(
        &mut names,
        "server.max_connections",
        &old.max_connections,
        &mut new.max_connections,
    );
    keep(
        &mut names,
        "server.dev_certificate",
        &old.dev_certificate,
        &mut new.dev_certificate,
    );
    keep(
        &mut names,
        "server.tls_handshake_timeout",
        &old.tls_handshake_timeout,
        &mut new.tls_handshake_timeout,
    );
    keep(
        &mut names,
        "server.header_read_timeout",
        &old.header_read_timeout,
        &mut new.header_read_timeout,
    );
    keep(
        &mut names,
        "server.idle_timeout",
        &old.idle_timeout,
        &mut new.idle_timeout,
    );
    keep(
        &mut names,
        "server.shutdown_timeout",
        &old.shutdown_timeout,
        &mut new.shutdown_timeout,
    );
    keep(
        &mut names,
        "server.max_concurrent_streams",
        &old.max_concurrent_streams,
        &mut new.max_concurrent_streams,
    );
    keep(
        &mut names,
        "server.body_read_timeout",
        &old.body_read_timeout,
        &mut new.body_read_timeout,
    );
    keep(
        &mut names,
        "server.tunnel_idle_timeout",
        &old.tunnel_idle_timeout,
        &mut new.tunnel_idle_timeout,
    );
    keep(
        &mut names,
        "server.max_header_size",
        &old.max_header_size,
        &mut new.max_header_size,
    );
    keep(
        &mut names,
        "server.pid_file",
        &old.pid_file,
        &mut new.pid_file,
    );
    keep(
        &mut names,
        "log.level",
        &running.log.level,
        &mut next.log.level,
    );
    keep(
        &mut names,
        "log.format",
        &running.log.format,
        &mut next.log.format,
    );
    keep(
        &mut names,
        "[upstream]",
        &running.upstream,
        &mut next.upstream,
    );
    keep(&mut names, "[store]", &running.store, &mut next.store);
    keep(&mut names, "[issuer]", &running.issuer, &mut next.issuer);
    keep(
        &mut names,
        "[passwords]",
        &running.passwords,
        &mut next.passwords,
    );
    keep(
        &mut names,
        "[attack_protection]",
        &running.attack_protection,
        &mut next.attack_protection,
    );
    keep(&mut names, "[mfa]", &running.mfa, &mut next.mfa);
    keep(&mut names, "[metrics]", &running.metrics, &mut next.metrics);
    names
}

/// Compared by their debug form: every config type has one, and a
/// difference there is a difference in the setting.
fn keep<T: Debug + Clone>(names: &mut Vec<&'static str>, name: &'static str, old: &T, new: &mut T) {
    if format!("{old:?}") != format!("{new:?}") {
        names.push(name);
        *new = old.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:8443\"\nworkers = 2\n";

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn restart_only_settings_are_named_and_kept() {
        let running = config(BASE);
        let mut next = config(
            "[server]\nlisten = \"127.0.0.1:9443\"\nworkers = 3\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        );
        let names = keep_restart_only(&running, &mut next);
        assert_eq!(names, vec!["server.listen", "server.workers"]);
        assert_eq!(next.server.listen, running.server.listen);
        assert_eq!(next.server.workers, 2);
        // A reloadable setting is the new one.
        assert_eq!(next.server.trusted_proxies.len(), 1);
    }

    #[test]
    fn nothing_named_when_nothing_restart_only_changed() {
        let running = config(BASE);
        let mut next = config(BASE);
        assert!(keep_restart_only(&running, &mut next).is_empty());
    }
}
