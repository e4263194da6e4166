//! Each rule's and action's metric handles (`passgate_script_duration_seconds`,
//! `passgate_script_failures_total`; docs/metrics.md), resolved once when the
//! pool starts and shared by every runtime. A runtime records each script it
//! ran, in chain order: rules first, then actions, as [`super::host::Host`]
//! runs them.

use std::time::Duration;

use super::host::Failure;
use super::source::{Kind, Source};
use crate::telemetry::metrics::{Metrics, ScriptKind, ScriptMetrics};

/// How one script of the chain ended, as far as the metrics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepEnd {
    /// It let the login go on (or redirected, which the token endpoint refuses).
    Done,
    /// It refused the login on purpose (`callback(err)`, `api.access.deny`).
    Denied,
    /// It threw: Auth0 denies the login, and it counts as the script's error.
    Threw,
}

/// The handles of every script, in chain order.
#[derive(Debug, Default)]
pub struct Meters {
    steps: Vec<Option<ScriptMetrics>>,
}

impl Meters {
    /// Resolve the handles for `sources` (none when metrics are off).
    pub fn new(metrics: &Metrics, sources: &[Source]) -> Meters {
        let of = |kind: Kind, as_label: ScriptKind| {
            sources
                .iter()
                .filter(move |s| s.kind == kind)
                .map(move |s| metrics.script(as_label, &s.name))
        };
        Meters {
            steps: of(Kind::Rule, ScriptKind::Rule)
                .chain(of(Kind::Action, ScriptKind::Action))
                .collect(),
        }
    }

    /// Record the `step`th script of the chain: its run time, and why it
    /// failed when it did.
    pub(super) fn record(&self, step: usize, took: Duration, ended: &Result<StepEnd, Failure>) {
        let Some(Some(m)) = self.steps.get(step) else {
            return;
        };
        m.ran(took);
        match ended {
            Ok(StepEnd::Done) => {}
            Ok(StepEnd::Denied) => m.denied(),
            Ok(StepEnd::Threw) => m.error(),
            Err(Failure::Timeout { .. }) => m.timeout(),
            Err(Failure::Resources { .. }) => m.out_of_memory(),
            Err(Failure::NeverSettled { .. } | Failure::Engine(_)) => m.error(),
        }
    }
}
