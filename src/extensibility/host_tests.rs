#![allow(clippy::unwrap_used)]
use super::*;
use std::time::Duration;

fn host(text: &str, memory: usize) -> Host {
    let src = Source {
        name: "probe".into(),
        key: "actions[0]".into(),
        path: "probe.js".into(),
        kind: Kind::Action,
        text: text.into(),
        values: Default::default(),
    };
    Host::build(
        &[src],
        memory,
        Default::default(),
        compile_deadline(Duration::ZERO),
    )
    .unwrap_or_else(|p| panic!("{p:?}"))
}

const INPUT: &str = r#"{"user":{"user_id":"a","app_metadata":{},"user_metadata":{}},
    "client":{"client_id":"c","name":"n","metadata":{}},"connection":{"name":"r","strategy":"auth0"},
    "request":{"ip":"","user_agent":"","hostname":"","body":{}},"protocol":"oauth2-password",
    "requested_scopes":[],"scopes":[],"audience":"a","logins_count":1,"methods":[]}"#;

#[test]
fn the_memory_limit_stops_an_allocation_bomb_and_the_clock_an_endless_loop() {
    let far = || Instant::now() + Duration::from_secs(30);
    let mut bomb = host(
        "exports.onExecutePostLogin = async () => { const h = []; let s = 'x'.repeat(1024); for (;;) { s = s.repeat(2); h.push(s); } };",
        16 << 20,
    );
    assert!(matches!(
        bomb.run(INPUT, far()),
        Err(Failure::Resources { ref detail, .. }) if detail.contains("out of memory")
    ));
    let mut looping = host(
        "exports.onExecutePostLogin = () => { for (;;) {} };",
        16 << 20,
    );
    let started = Instant::now();
    let soon = Instant::now() + Duration::from_millis(50);
    assert!(matches!(
        looping.run(INPUT, soon),
        Err(Failure::Timeout { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The stack is bounded too: deep recursion is an error, not a crash.
    let mut deep = host(
        "exports.onExecutePostLogin = () => { const f = (n) => f(n + 1) + 1; f(0); };",
        16 << 20,
    );
    assert!(matches!(
        deep.run(INPUT, far()),
        Err(Failure::Resources { .. })
    ));
}

#[test]
fn a_settled_chain_leaves_the_runtime_reusable() {
    let mut h = host(
        "exports.onExecutePostLogin = async (e, api) => { api.accessToken.setCustomClaim('n', e.stats.logins_count); };",
        16 << 20,
    );
    for _ in 0..3 {
        let out = h
            .run(INPUT, Instant::now() + Duration::from_secs(30))
            .unwrap();
        assert!(out.contains(r#""access":{"n":1}"#), "{out}");
    }
    assert!(h.memory() > 0);
}
