//! One JavaScript runtime with every script compiled into it: what a script
//! worker owns. QuickJS runtimes are single-threaded, so a host never leaves
//! the thread that built it.
//!
//! Runaway scripts are stopped inside QuickJS: the interrupt handler ends
//! the running code once the login's deadline has passed, and the memory
//! limit turns an allocation bomb into an exception. Either way the caller
//! ([`super::pool`]) drops the host and builds a fresh one, so the pool stays
//! whole whatever a script did.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::promise::PromiseState;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Promise, Runtime,
    Value,
};

use super::cache::ScriptCache;
use super::meters::{Meters, StepEnd};
use super::source::{Kind, Source, SyntaxProblem};

/// The Auth0 surfaces, in JavaScript.
const PRELUDE: &str = include_str!("prelude.js");

/// Native stack a script may use (QuickJS checks it; deep recursion is an
/// exception, not a crash).
const MAX_STACK: usize = 512 * 1024;

/// Least time compiling every script (and running actions' top-level code)
/// may take: a login's budget can be far shorter than a cold start needs.
const COMPILE_BUDGET: Duration = Duration::from_secs(5);

/// When compiling, started now, must end: stops a script whose top-level
/// code never ends, without failing a slow but sound start.
pub fn compile_deadline(timeout: Duration) -> Instant {
    Instant::now() + timeout.max(COMPILE_BUDGET)
}

/// Why a chain did not produce an outcome: all of them are the gateway's
/// 500, with the details in the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The login's budget ran out (an endless loop, or a wait in the queue).
    #[error("script {script}: ran past the extensibility timeout")]
    Timeout {
        /// The script that was running.
        script: String,
    },
    /// The runtime's memory limit or stack was exhausted.
    #[error("script {script}: exhausted its memory or stack: {detail}")]
    Resources {
        /// The script that was running.
        script: String,
        /// The engine's message.
        detail: String,
    },
    /// The script's callback was never called or its Promise never settled.
    #[error("script {script}: never called back or settled its Promise")]
    NeverSettled {
        /// The script that was running.
        script: String,
    },
    /// The engine itself failed (a bug in passgate's glue).
    #[error("script engine: {0}")]
    Engine(String),
}

impl Failure {
    /// Whether the runtime may be damaged and must be rebuilt.
    pub fn poisons(&self) -> bool {
        !matches!(self, Failure::NeverSettled { .. })
    }
}

/// A runtime holding the compiled scripts. Field order matters: the saved
/// values are released before the context and runtime they live in.
pub struct Host {
    pg: Persistent<Object<'static>>,
    rules: Vec<(String, Persistent<Object<'static>>)>,
    actions: Vec<(String, Persistent<Object<'static>>)>,
    deadline: Rc<Cell<Option<Instant>>>,
    meters: Arc<Meters>,
    ctx: Context,
    rt: Runtime,
}

impl Host {
    /// A runtime limited to `memory_limit` bytes with `sources` compiled in;
    /// compiling (and an action's top-level code) must end by `deadline`.
    /// Every script that does not compile is named.
    pub fn build(
        sources: &[Source],
        memory_limit: usize,
        cache: Arc<ScriptCache>,
        deadline: Instant,
    ) -> Result<Host, Vec<SyntaxProblem>> {
        let engine = |e: rquickjs::Error| vec![SyntaxProblem::engine(&e.to_string())];
        let rt = Runtime::new().map_err(engine)?;
        rt.set_memory_limit(memory_limit);
        rt.set_max_stack_size(MAX_STACK);
        let cell: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(Some(deadline)));
        let watch = Rc::clone(&cell);
        rt.set_interrupt_handler(Some(Box::new(move || {
            watch.get().is_some_and(|d| Instant::now() >= d)
        })));
        let ctx = Context::full(&rt).map_err(engine)?;
        let built = ctx.with(|ctx| -> Result<_, Vec<SyntaxProblem>> {
            let pg: Object = ctx
                .eval(PRELUDE)
                .catch(&ctx)
                .map_err(|e| vec![SyntaxProblem::engine(&e.to_string())])?;
            install_cache(&ctx, cache).map_err(engine)?;
            let mut rules = Vec::new();
            let mut actions = Vec::new();
            let mut problems = Vec::new();
            for s in sources {
                match compile(&ctx, &pg, s) {
                    Ok(obj) => {
                        let saved = Persistent::save(&ctx, obj);
                        match s.kind {
                            Kind::Rule => rules.push((s.name.clone(), saved)),
                            Kind::Action => actions.push((s.name.clone(), saved)),
                        }
                    }
                    Err(p) => problems.push(p),
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
            Ok((Persistent::save(&ctx, pg), rules, actions))
        });
        let (pg, rules, actions) = built?;
        cell.set(None);
        Ok(Host {
            pg,
            rules,
            actions,
            deadline: cell,
            meters: Arc::default(),
            ctx,
            rt,
        })
    }

    /// Record each script's runs in `meters` (by default, nowhere).
    pub fn with_meters(mut self, meters: Arc<Meters>) -> Host {
        self.meters = meters;
        self
    }

    /// Bytes the runtime holds now.
    pub fn memory(&self) -> u64 {
        self.rt.memory_usage().malloc_size.max(0) as u64
    }

    /// Run every rule, then every action, on `input` (the login's facts as
    /// JSON) and return the outcome as JSON, all before `deadline`.
    pub fn run(&mut self, input: &str, deadline: Instant) -> Result<String, Failure> {
        self.deadline.set(Some(deadline));
        let answer = self.ctx.with(|ctx| self.chain(&ctx, input, deadline));
        self.deadline.set(None);
        if answer.as_ref().is_err_and(Failure::poisons) {
            return answer;
        }
        // Drop what this login left behind (pending jobs of a script that
        // never settled, unreachable objects) so the next one starts clean.
        while self.rt.is_job_pending() {
            if self.rt.execute_pending_job().is_err() || Instant::now() >= deadline {
                break;
            }
        }
        self.rt.run_gc();
        answer
    }

    fn chain<'js>(
        &self,
        ctx: &Ctx<'js>,
        input: &str,
        deadline: Instant,
    ) -> Result<String, Failure> {
        let engine = |e: rquickjs::Error| Failure::Engine(e.to_string());
        let pg = self.pg.clone().restore(ctx).map_err(engine)?;
        let start: Function = pg.get("start").map_err(engine)?;
        let stopped: Function = pg.get("stopped").map_err(engine)?;
        let state: Object = start.call((input,)).map_err(engine)?;
        let steps = self
            .rules
            .iter()
            .map(|r| ("runRule", r))
            .chain(self.actions.iter().map(|a| ("runAction", a)));
        for (i, (runner, (name, script))) in steps.enumerate() {
            let began = Instant::now();
            let ended = step(ctx, &pg, runner, (name, script), &state, deadline);
            self.meters.record(i, began.elapsed(), &ended);
            ended?;
            if stopped.call::<_, bool>((state.clone(),)).map_err(engine)? {
                break;
            }
        }
        let finish: Function = pg.get("finish").map_err(engine)?;
        finish.call((state,)).map_err(engine)
    }
}

/// Run one script of the chain on `state` until it settles, and say how it
/// ended.
fn step<'js>(
    ctx: &Ctx<'js>,
    pg: &Object<'js>,
    runner: &str,
    (name, script): (&String, &Persistent<Object<'static>>),
    state: &Object<'js>,
    deadline: Instant,
) -> Result<StepEnd, Failure> {
    let engine = |e: rquickjs::Error| Failure::Engine(e.to_string());
    let run: Function = pg.get(runner).map_err(engine)?;
    let script = script.clone().restore(ctx).map_err(engine)?;
    let called = run
        .call::<_, Promise>((script, state.clone()))
        .catch(ctx)
        .map_err(|e| classify(e, name, deadline));
    settle(ctx, called?, name, deadline)?;
    let outcome: Value = state.get("outcome").map_err(engine)?;
    let Some(o) = outcome.as_object() else {
        return Ok(StepEnd::Done);
    };
    if let Ok(Some(fault)) = o.get::<_, Option<String>>("fault") {
        return Err(Failure::Resources {
            script: name.clone(),
            detail: fault,
        });
    }
    Ok(match o.get::<_, Option<bool>>("thrown") {
        Ok(Some(true)) => StepEnd::Threw,
        _ => StepEnd::Denied,
    })
}

/// Run jobs until `promise` settles; a Promise that is still pending with no
/// job left can never settle (scripts have no timers).
fn settle<'js>(
    ctx: &Ctx<'js>,
    promise: Promise<'js>,
    script: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    loop {
        match promise.state() {
            PromiseState::Resolved | PromiseState::Rejected => return Ok(()),
            PromiseState::Pending => {}
        }
        if Instant::now() >= deadline {
            return Err(Failure::Timeout {
                script: script.to_string(),
            });
        }
        if !ctx.execute_pending_job() {
            // Either no job was left, or the job threw past every handler
            // (the interrupt, or memory exhausted outside a script's reach).
            if Instant::now() >= deadline {
                return Err(Failure::Timeout {
                    script: script.to_string(),
                });
            }
            if ctx.has_exception() {
                let caught = ctx.catch();
                return Err(classify_value(&caught, script, deadline));
            }
            if promise.state() == PromiseState::Pending {
                return Err(Failure::NeverSettled {
                    script: script.to_string(),
                });
            }
        }
    }
}

/// An error that reached Rust from a script's call.
fn classify(e: CaughtError<'_>, script: &str, deadline: Instant) -> Failure {
    if Instant::now() >= deadline {
        return Failure::Timeout {
            script: script.to_string(),
        };
    }
    let detail = match &e {
        CaughtError::Exception(x) => x.message().unwrap_or_default(),
        CaughtError::Value(v) => format!("{v:?}"),
        CaughtError::Error(err) => err.to_string(),
    };
    resource_or_engine(detail, script)
}

fn classify_value(v: &Value<'_>, script: &str, deadline: Instant) -> Failure {
    if Instant::now() >= deadline {
        return Failure::Timeout {
            script: script.to_string(),
        };
    }
    let detail = v
        .as_object()
        .and_then(|o| o.get::<_, Option<String>>("message").ok().flatten())
        .unwrap_or_else(|| format!("{v:?}"));
    resource_or_engine(detail, script)
}

fn resource_or_engine(detail: String, script: &str) -> Failure {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("memory") || lower.contains("stack") || lower.contains("allocation") {
        Failure::Resources {
            script: script.to_string(),
            detail,
        }
    } else {
        Failure::Engine(format!("{script}: {detail}"))
    }
}

/// Evaluate one script and hand it to the prelude's compiler.
fn compile<'js>(
    ctx: &Ctx<'js>,
    pg: &Object<'js>,
    s: &Source,
) -> Result<Object<'js>, SyntaxProblem> {
    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.filename = Some(s.path.display().to_string());
    let wrapped = s.wrapped();
    let value: Value = ctx
        .eval_with_options(wrapped.text.clone(), options)
        .catch(ctx)
        .map_err(|e| SyntaxProblem::from_caught(s, &wrapped, e))?;
    let values = serde_json::to_string(&s.values).unwrap_or_else(|_| "{}".into());
    let values: Value = ctx
        .json_parse(values)
        .map_err(|e| SyntaxProblem::plain(s, &e.to_string()))?;
    let compiler: Function = pg
        .get(match s.kind {
            Kind::Rule => "compileRule",
            Kind::Action => "compileAction",
        })
        .map_err(|e| SyntaxProblem::plain(s, &e.to_string()))?;
    compiler
        .call((value, values))
        .catch(ctx)
        .map_err(|e| SyntaxProblem::from_caught(s, &wrapped, e))
}

/// `__passgate_cache_get/set`, behind `api.cache`.
fn install_cache(ctx: &Ctx<'_>, cache: Arc<ScriptCache>) -> rquickjs::Result<()> {
    let reader = Arc::clone(&cache);
    let get = Function::new(ctx.clone(), move |key: String| reader.get(&key))?;
    let set = Function::new(
        ctx.clone(),
        move |key: String, value: String, ttl_ms: f64| {
            cache.set(key, value, ttl_ms);
        },
    )?;
    ctx.globals().set("__passgate_cache_get", get)?;
    ctx.globals().set("__passgate_cache_set", set)?;
    Ok(())
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
