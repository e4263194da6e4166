//! criterion benches of the per-request header work on the proxy path (issue
//! 14, "the hop"): hop-by-hop stripping of a request and of an upstream's
//! answer, the forwarding headers, a new request id and a new trace, and
//! passgate's own HTTP/1.1 client writing the upstream request's head and
//! parsing the answer's.
//! The header sets are what the side-by-side bench sends and gets back
//! (h2load / wrk through passgate to nginx).
//!
//!     cargo bench --bench hop
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use passgate::http::written::Written;
use passgate::upstream::http1::codec;

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

/// A request as h2load sends it over HTTP/1.1.
fn request() -> HeaderMap {
    map(&[
        ("host", "127.0.0.1:18445"),
        ("user-agent", "h2load nghttp2/1.52.0"),
        ("accept", "*/*"),
    ])
}

/// nginx's answer, as the stand-in upstream sends it.
fn response() -> HeaderMap {
    map(&[
        ("server", "nginx/1.22.1"),
        ("date", "Mon, 30 Nov 2026 12:00:00 GMT"),
        ("content-type", "application/octet-stream"),
        ("content-length", "11"),
        ("connection", "keep-alive"),
    ])
}

fn headers(c: &mut Criterion) {
    let req = request();
    let resp = response();
    let host = HeaderValue::from_static("127.0.0.1:18445");
    let client: IpAddr = "127.0.0.1".parse().expect("ip");
    c.bench_function("hop/strip_request", |b| {
        b.iter(|| {
            let mut h = req.clone();
            passgate::http::headers::strip_request_hop_by_hop(&mut h, false);
            black_box(h.len())
        })
    });
    c.bench_function("hop/strip_response", |b| {
        b.iter(|| {
            let mut h = resp.clone();
            passgate::http::headers::strip_hop_by_hop(&mut h, false);
            black_box(h.len())
        })
    });
    // Once per connection, as the server does.
    let peer = passgate::http::headers::PeerHeaders::new(client);
    // The request's map cloned, as a request brings its own; the fields go
    // beside it (`http::written`).
    c.bench_function("hop/forwarded", |b| {
        b.iter(|| {
            let h = req.clone();
            let mut written = Written::new();
            passgate::http::headers::add_forwarded(&h, black_box(&peer), Some(&host), &mut written);
            black_box((h.len(), written.len()))
        })
    });
    c.bench_function("hop/request_id", |b| {
        b.iter(passgate::http::headers::new_request_id)
    });
    // The upstream side, passgate's own HTTP/1.1 client: the forwarded
    // request's head written, and nginx's answer parsed (the buffer's
    // allocation included; a connection reuses its own).
    let forwarded = req.clone();
    let mut written = Written::new();
    passgate::http::headers::add_forwarded(&forwarded, &peer, Some(&host), &mut written);
    written.push(
        &passgate::http::headers::X_REQUEST_ID,
        passgate::http::headers::new_request_id(),
    );
    let mut head = Vec::with_capacity(1024);
    c.bench_function("hop/upstream_write_head", |b| {
        b.iter(|| {
            head.clear();
            codec::write_head(
                &mut head,
                &Method::GET,
                "/plain/items",
                black_box(&forwarded),
                black_box(&written),
            );
            black_box(head.len())
        })
    });
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n{\"ok\":true}";
    c.bench_function("hop/upstream_parse_head", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(black_box(answer));
            black_box(codec::parse_head(&mut buf, false).expect("valid").is_some())
        })
    });
    let empty = HeaderMap::new();
    c.bench_function("hop/trace_of_none", |b| {
        b.iter(|| passgate::http::trace::TraceContext::of(black_box(&empty)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = headers
}
criterion_main!(benches);
