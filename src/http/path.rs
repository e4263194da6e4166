//! Request-path normalisation, done once before routing.
//!
//! The normalised path is both what routes match and what goes upstream, so a
//! path can never be matched under one route's policy and resolved by an
//! upstream as another's: `/public/../admin`, `/public/%2e%2e/admin` and
//! `//admin` all become `/admin` before anything looks at them. Encoded
//! unreserved characters are decoded (`/%61pi` is `/api`), other escapes are
//! kept with upper-case hex, and encoded slashes, backslashes and NULs are
//! refused because upstreams disagree on what they mean.
//!
//! Path parameters (`;` in a segment, RFC 3986 §3.3) get the same treatment.
//! `..;x` is an ordinary segment to RFC 3986, but Tomcat, Jetty and Spring cut
//! the parameters off first and resolve it as `..`: `/public/..;/api` is
//! `/public/..;/api` to one reader and `/api` to the other. A dot segment
//! carrying parameters (`.;`, `..;jsessionid=x`, `%2e%2e;`, `..%3B`) has no
//! legitimate use (clients remove dot segments before sending), so it is
//! refused rather than resolved one way or the other. Parameters on any other
//! segment (`/items;v=1`) are kept and forwarded: they are the upstream's
//! business. [`without_parameters`] gives the path as a parameter-cutting
//! server reads it, so the caller can refuse a path whose route it changes.

use std::borrow::Cow;
use std::fmt;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/` (e.g. `*` or an authority-form target).
    NotAbsolute,
    /// `%2F` or `%5C`: a separator hidden from the router.
    EncodedSeparator,
    /// A literal backslash.
    Backslash,
    /// `%00`.
    EncodedNul,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `.` or `..` followed by path parameters (`..;x`), which servers disagree on.
    DotSegmentParameters,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the request target is not an absolute path",
            PathError::EncodedSeparator => "the path contains an encoded slash or backslash",
            PathError::Backslash => "the path contains a backslash",
            PathError::EncodedNul => "the path contains an encoded NUL",
            PathError::BadEscape => "the path contains a malformed percent-escape",
            PathError::DotSegmentParameters => {
                "the path contains a dot segment with parameters (such as `..;`)"
            }
        })
    }
}

impl std::error::Error for PathError {}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// True when `path` needs no work: no escapes, no dot segments, no empty segments.
fn already_normal(path: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' | b'\\' => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => {
                // "/." starts a dot segment (possibly with parameters) only
                // when followed by "/", ";", "." + one of those, or the end.
                let rest = &path[i + 1..];
                let ends_segment = |b: Option<&u8>| matches!(b, None | Some(b'/' | b';'));
                if ends_segment(rest.first()) || (rest[0] == b'.' && ends_segment(rest.get(1))) {
                    return false;
                }
            }
            _ => {}
        }
        prev = b;
    }
    true
}

/// Normalise a request path (without its query): decode escaped unreserved
/// characters, upper-case other escapes, collapse repeated slashes and remove
/// dot segments (never above the root). A trailing slash is kept.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if already_normal(bytes) {
        return Ok(Cow::Borrowed(path));
    }

    // 1. Escapes.
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi * 16 + lo;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::EncodedNul),
                    v if is_unreserved(v) => decoded.push(v as char),
                    v => {
                        decoded.push('%');
                        decoded.push(char::from(b"0123456789ABCDEF"[(v >> 4) as usize]));
                        decoded.push(char::from(b"0123456789ABCDEF"[(v & 15) as usize]));
                    }
                }
                i += 3;
            }
            _ => {
                // Multi-byte UTF-8 is copied whole; the URI parser already vetted it.
                let ch_len = match b {
                    0x00..=0x7F => 1,
                    0xC0..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    _ => 4,
                };
                let end = (i + ch_len).min(bytes.len());
                decoded.push_str(path.get(i..end).unwrap_or(""));
                i = end;
            }
        }
    }

    // 2. Segments.
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split('/').skip(1) {
        if let Some(at) = parameters_at(seg)
            && matches!(&seg[..at], "." | "..")
        {
            return Err(PathError::DotSegmentParameters);
        }
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        result.push('/');
    }
    Ok(Cow::Owned(result))
}

/// Where a segment's parameters start: its first `;`, literal or encoded
/// (`%3B`, upper-case after [`normalize`]).
fn parameters_at(segment: &str) -> Option<usize> {
    let literal = segment.find(';');
    let encoded = segment.find("%3B");
    match (literal, encoded) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A normalised path with every segment's parameters cut off, as Tomcat,
/// Jetty and Spring read it before they route: `/api;v=1/items` is
/// `/api/items`. Borrowed when the path has no parameters.
pub fn without_parameters(path: &str) -> Cow<'_, str> {
    if !has_parameters(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(parameters_at(seg).map_or(seg, |at| &seg[..at]));
    }
    Cow::Owned(out)
}

/// `;` or `%3B` (escapes are upper case once normalised) anywhere in `path`:
/// one pass over the bytes, since every request's path is checked.
fn has_parameters(path: &[u8]) -> bool {
    path.iter()
        .enumerate()
        .any(|(i, &b)| b == b';' || (b == b'%' && path.get(i + 1..i + 3) == Some(b"3B")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/api/items", Ok("/api/items")),
            ("/api/items/", Ok("/api/items/")),
            ("//api//items", Ok("/api/items")),
            ("/public/../admin", Ok("/admin")),
            ("/public/%2e%2e/admin", Ok("/admin")),
            ("/public/%2E%2E/admin", Ok("/admin")),
            ("/public/.%2e/admin", Ok("/admin")),
            ("/public/./x", Ok("/public/x")),
            ("/a/b/..", Ok("/a/")),
            ("/a/.", Ok("/a/")),
            ("/../../etc/passwd", Ok("/etc/passwd")),
            ("/..", Ok("/")),
            ("/%61pi/x", Ok("/api/x")),
            ("/a%20b", Ok("/a%20b")),
            ("/a%2fb", Err(PathError::EncodedSeparator)),
            ("/a%2Fb", Err(PathError::EncodedSeparator)),
            ("/a%5Cb", Err(PathError::EncodedSeparator)),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a%00", Err(PathError::EncodedNul)),
            ("/a%zz", Err(PathError::BadEscape)),
            ("/a%2", Err(PathError::BadEscape)),
            ("/a%c3%a9", Ok("/a%C3%A9")),
            ("/.well-known/x", Ok("/.well-known/x")),
            ("/a/..b/c", Ok("/a/..b/c")),
            ("/a/.b", Ok("/a/.b")),
            ("/caf\u{e9}/../x", Ok("/x")),
            // Path parameters: kept on ordinary segments, refused on dot segments.
            ("/items;v=1", Ok("/items;v=1")),
            ("/a;x/../b", Ok("/b")),
            ("/a/..x;y/b", Ok("/a/..x;y/b")),
            ("/a/b;c=..;d", Ok("/a/b;c=..;d")),
            ("/;x/a", Ok("/;x/a")),
            (
                "/public/..;/api/items",
                Err(PathError::DotSegmentParameters),
            ),
            ("/public/%2e%2e;/api", Err(PathError::DotSegmentParameters)),
            ("/public/.%2E;/api", Err(PathError::DotSegmentParameters)),
            ("/a/..;jsessionid=x/b", Err(PathError::DotSegmentParameters)),
            ("/a/.;/b", Err(PathError::DotSegmentParameters)),
            ("/a/.;", Err(PathError::DotSegmentParameters)),
            ("/a/..;", Err(PathError::DotSegmentParameters)),
            ("/a/..%3b/b", Err(PathError::DotSegmentParameters)),
            ("/a/%2e%3Bx/b", Err(PathError::DotSegmentParameters)),
            ("*", Err(PathError::NotAbsolute)),
            ("", Err(PathError::NotAbsolute)),
        ];
        for (input, want) in cases {
            let got = normalize(input).map(|c| c.into_owned());
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "input {input:?}");
        }
    }

    #[test]
    fn parameters_cut_off() {
        let cases = [
            ("/api/items", "/api/items"),
            ("/api;v=1/items", "/api/items"),
            ("/api;/items;x=2", "/api/items"),
            ("/api%3Bv=1/items", "/api/items"),
            ("/;x", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(without_parameters(input), want, "{input}");
        }
        assert!(matches!(without_parameters("/a/b"), Cow::Borrowed(_)));
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(normalize("/api/items?"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/api/.hidden"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/a/./b/../c//d/", "/%2e/x", "/x/%7euser"] {
            let once = normalize(p).map(|c| c.into_owned());
            let once = once.as_deref().unwrap_or("");
            let twice = normalize(once).map(|c| c.into_owned());
            assert_eq!(twice.as_deref(), Ok(once), "{p}");
        }
    }
}
