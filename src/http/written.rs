//! The header fields passgate writes on a forwarded request: the forwarding
//! headers, `X-Real-IP`, `X-Request-Id`, `traceparent` and, after a token
//! check, the identity headers.
//!
//! They are kept beside the client's headers instead of inserted into its
//! map. An insert hashes the name, probes the table and, once the map is
//! full, grows it and rehashes every name; ten of them were some 3,000
//! instructions of each proxied request (docs/benchmarks.md, the hop).
//! passgate's own HTTP/1.1 pool writes these fields after the client's
//! (`upstream::http1::codec::write_head`); a request that goes through
//! hyper-util's client gets them inserted into its map first
//! ([`Written::insert_into`]).
//!
//! What makes that safe: the client's map holds none of these names by then.
//! `RequestHygiene` removes every client copy of the names passgate writes
//! (`GATEWAY_WRITTEN`), and every identity header (`gate::is_identity`) with them, before
//! anything is added here.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The fields passgate adds to a forwarded request, in the order written.
#[derive(Debug, Clone, Default)]
pub struct Written {
    fields: Vec<(Name, HeaderValue)>,
}

/// A field's name: most are passgate's own statics, borrowed rather than
/// cloned (a clone and a drop of a name that is not one of the standard
/// headers are two calls through `Bytes`' vtable).
#[derive(Debug, Clone)]
enum Name {
    Static(&'static HeaderName),
    Owned(HeaderName),
}

impl Name {
    fn get(&self) -> &HeaderName {
        match self {
            Name::Static(name) => name,
            Name::Owned(name) => name,
        }
    }
}

/// The fields most requests get: five forwarding ones, the request id, the
/// trace and three identity headers.
const USUAL: usize = 10;

impl Written {
    /// An empty list with room for the usual fields.
    pub fn new() -> Self {
        Self {
            fields: Vec::with_capacity(USUAL),
        }
    }

    /// Add `name`, one of passgate's own, which nothing else on the list has
    /// (each caller writes names of its own).
    pub fn push(&mut self, name: &'static HeaderName, value: HeaderValue) {
        self.fields.push((Name::Static(name), value));
    }

    /// Add `name`, replacing what the list held under it (for names a
    /// configuration gives, which may repeat).
    pub fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        match self.fields.iter_mut().find(|(n, _)| n.get() == name) {
            Some((_, held)) => *held = value,
            None => self.fields.push((Name::Owned(name.clone()), value)),
        }
    }

    /// The value written under `name`, if any.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.fields.iter().map(|(n, v)| (n.get(), v))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Put the fields into `headers`, replacing any copy there (for a request
    /// that hyper-util's client writes).
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        let _ = headers.try_reserve(self.fields.len());
        for (name, value) in self.iter() {
            headers.insert(name, value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    static A: HeaderName = HeaderName::from_static("x-a");
    static B: HeaderName = HeaderName::from_static("x-b");

    #[test]
    fn set_replaces_and_push_appends_in_order() {
        let mut w = Written::new();
        w.push(&A, HeaderValue::from_static("1"));
        w.set(&B, HeaderValue::from_static("2"));
        w.set(&B, HeaderValue::from_static("3"));
        let got: Vec<_> = w
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(got, [("x-a", "1"), ("x-b", "3")]);
        assert_eq!(w.get(&B).unwrap(), "3");
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn inserted_fields_replace_the_maps_own() {
        let mut w = Written::new();
        w.push(&A, HeaderValue::from_static("ours"));
        let mut headers = HeaderMap::new();
        headers.append(&A, HeaderValue::from_static("theirs"));
        headers.append(&A, HeaderValue::from_static("theirs too"));
        headers.append(&B, HeaderValue::from_static("kept"));
        w.insert_into(&mut headers);
        assert_eq!(headers.get_all(&A).iter().collect::<Vec<_>>(), ["ours"]);
        assert_eq!(headers[&B], "kept");
    }
}
