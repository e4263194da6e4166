//! The proxied request's futures stay within their sizes. hyper boxes one
//! handler future per request (copying all of it), and each level of the
//! request path holds the next one's future inside its own, so a local that
//! lives across an `.await` on the hot path costs every request its size in
//! copies and memory (docs/benchmarks.md, the handler's size). A state that
//! only a rare path needs (the token endpoint, a token the gate has not seen,
//! a new upstream connection) is boxed where it is awaited instead.
//!
//! The sizes are the compiler's layout of each future, the same in debug and
//! release builds; a change of compiler may move them a little.

use std::mem::size_of;

use passgate::proxy::Proxy;
use passgate::service::Handler;
use passgate::upstream::http1::Http1Pool;

/// The size of what `f` returns, without calling it.
fn output_size3<F, A, B, C, R>(_: F) -> usize
where
    F: FnOnce(A, B, C) -> R,
{
    size_of::<R>()
}

fn output_size4<F, A, B, C, D, R>(_: F) -> usize
where
    F: FnOnce(A, B, C, D) -> R,
{
    size_of::<R>()
}

fn output_size5<F, A, B, C, D, E, R>(_: F) -> usize
where
    F: FnOnce(A, B, C, D, E) -> R,
{
    size_of::<R>()
}

fn within(name: &str, size: usize, budget: usize) {
    assert!(
        size <= budget,
        "{name}'s future is {size} bytes, over its {budget}: box the state of a rare path where \
         it is awaited, or end a large local's scope before the next .await"
    );
}

#[test]
fn the_handler_future_stays_within_3_kib() {
    within("Handler::handle", output_size5(Handler::handle), 3 * 1024);
}

#[test]
fn the_forwarding_future_stays_within_1600_bytes() {
    within("Proxy::forward", output_size3(Proxy::forward), 1600);
}

#[test]
fn the_upstream_send_future_stays_within_512_bytes() {
    within("Http1Pool::send", output_size4(Http1Pool::send), 512);
}
