//! Reading the bearer token from a request (RFC 6750 §2.1): exactly one
//! `Authorization` header, scheme `Bearer` (any case), one b64token.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// What the `Authorization` header held.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No bearer credential at all (no header, or another scheme such as Basic).
    Missing,
    /// A syntactically valid bearer token.
    Token(&'a str),
    /// Something RFC 6750 calls an invalid request.
    Malformed(&'static str),
}

/// Whether `b` may appear in a b64token (RFC 6750 §2.1): a letter, a digit,
/// or one of `-._~+/`. Written without branches (`|` on `bool`s, ranges by
/// wrapping subtraction) so that [`all_b64token`] compiles to vector compares.
fn is_b64token_byte(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether every byte of `bytes` may appear in a b64token. A token is
/// hundreds of bytes, checked on every request to a protected route: 32
/// bytes at a time, with no branch inside a chunk (docs/benchmarks.md, the hop).
fn all_b64token(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        if !chunk.iter().fold(true, |ok, &b| ok & is_b64token_byte(b)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| is_b64token_byte(b))
}

/// Find the bearer token in `headers`: [`unchecked_credential`], and the
/// token found checked with [`check_token`].
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    match unchecked_credential(headers) {
        Credential::Token(token) => match check_token(token) {
            Ok(()) => Credential::Token(token),
            Err(why) => Credential::Malformed(why),
        },
        other => other,
    }
}

const NOT_ASCII: &str = "the Authorization header is not ASCII";

/// [`credential`] without [`check_token`]: exactly one `Authorization`
/// header, scheme `Bearer`, something after it. For the gate, which first
/// looks the token up among tokens it verified (each of which was a single
/// b64token) and checks only a token it does not know: a token is hundreds
/// of bytes, and most requests carry one the gate has seen.
pub fn unchecked_credential(headers: &HeaderMap) -> Credential<'_> {
    match unchecked_bytes(headers) {
        Ok(None) => Credential::Missing,
        Ok(Some(token)) => match as_text(token) {
            Ok(token) => Credential::Token(token),
            Err(why) => Credential::Malformed(why),
        },
        Err(why) => Credential::Malformed(why),
    }
}

/// [`unchecked_credential`]'s token as the bytes it came in (`None`: no
/// bearer credential; `Err`: why the header is an invalid request): the
/// gate's cache is looked up with these, and only a token it does not know
/// is read as text ([`token_text`]), since every key there is a b64token.
pub fn unchecked_bytes(headers: &HeaderMap) -> Result<Option<&[u8]>, &'static str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(space) => (&bytes[..space], &bytes[space + 1..]),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return match value.to_str() {
            Ok(_) => Ok(None),
            Err(_) => Err(NOT_ASCII),
        };
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if token.is_empty() {
        return Err("the Bearer credential is empty");
    }
    Ok(Some(token))
}

/// A token [`unchecked_bytes`] found, as text, once it is one b64token
/// ([`check_token`]); why not, when it is not.
pub fn token_text(token: &[u8]) -> Result<&str, &'static str> {
    let token = as_text(token)?;
    check_token(token)?;
    Ok(token)
}

/// A token's bytes as text, unchecked otherwise.
fn as_text(token: &[u8]) -> Result<&str, &'static str> {
    std::str::from_utf8(token).map_err(|_| NOT_ASCII)
}

/// Whether a token [`unchecked_credential`] found is one b64token (RFC 6750
/// §2.1: b64token characters, then any `=`); why not, when it is not.
pub fn check_token(token: &str) -> Result<(), &'static str> {
    let bytes = token.as_bytes();
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &bytes[..bytes.len() - padding];
    if !body.is_empty() && all_b64token(body) {
        return Ok(());
    }
    // Any byte outside visible ASCII is in the token: say so first (what
    // `HeaderValue::to_str` refuses; the scheme and spaces before the token
    // are visible ASCII).
    match bytes
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        true => Err("the Bearer credential is not a single token"),
        false => Err(NOT_ASCII),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                AUTHORIZATION,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("x")),
            );
        }
        h
    }

    #[test]
    fn b64token_bytes_are_the_rfcs() {
        let rfc = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
        for b in 0..=255u8 {
            assert_eq!(is_b64token_byte(b), rfc(b), "byte {b:#04x}");
        }
        // Every position of a long token is checked, in a chunk or after.
        let token = vec![b'a'; 100];
        assert!(all_b64token(&token));
        for at in [0, 31, 32, 63, 95, 96, 99] {
            let mut bad = token.clone();
            bad[at] = b' ';
            assert!(!all_b64token(&bad), "a space at {at}");
        }
    }

    #[test]
    fn table() {
        let ok = Credential::Token("abc.def.ghi");
        let cases: &[(&[&str], Credential)] = &[
            (&[], Credential::Missing),
            (&["Basic dXNlcjpwYXNz"], Credential::Missing),
            (&["Bearer abc.def.ghi"], ok),
            (&["bearer abc.def.ghi"], Credential::Token("abc.def.ghi")),
            (&["Bearer   abc.def.ghi"], Credential::Token("abc.def.ghi")),
            (
                &["Bearer abc.def.ghi", "Bearer x.y.z"],
                Credential::Malformed("more than one Authorization header"),
            ),
            (
                &["Bearer"],
                Credential::Malformed("the Bearer credential is empty"),
            ),
            (
                &["Bearer "],
                Credential::Malformed("the Bearer credential is empty"),
            ),
            (
                &["Bearer a b"],
                Credential::Malformed("the Bearer credential is not a single token"),
            ),
            (
                &["Bearer a,b"],
                Credential::Malformed("the Bearer credential is not a single token"),
            ),
            (&["Bearer abc=="], Credential::Token("abc==")),
            (
                &["Bearer =="],
                Credential::Malformed("the Bearer credential is not a single token"),
            ),
            (
                &["Bearer abcé"],
                Credential::Malformed("the Authorization header is not ASCII"),
            ),
            (
                &["Basic é"],
                Credential::Malformed("the Authorization header is not ASCII"),
            ),
            (&["Bearer\ta"], Credential::Missing),
        ];
        for (values, want) in cases {
            let headers = with(values);
            assert_eq!(&credential(&headers), want, "{values:?}");
            // The gate looks a token up before it checks it: unchecked, the
            // answer is the same, except that a token that is not one
            // b64token (or not ASCII) is still found, and check_token then
            // refuses it with the same words.
            match (want, unchecked_credential(&headers)) {
                (Credential::Malformed(why), Credential::Token(t)) => {
                    assert_eq!(check_token(t), Err(*why), "{values:?}, checked after");
                }
                (want, unchecked) => assert_eq!(&unchecked, want, "{values:?}, unchecked"),
            }
            assert_eq!(
                &as_the_gate_reads(&headers),
                want,
                "{values:?}, as the gate reads it"
            );
        }
    }

    /// The bytes, then (as on a cache miss) the text.
    fn as_the_gate_reads(headers: &HeaderMap) -> Credential<'_> {
        match unchecked_bytes(headers) {
            Ok(None) => Credential::Missing,
            Ok(Some(token)) => match token_text(token) {
                Ok(token) => Credential::Token(token),
                Err(why) => Credential::Malformed(why),
            },
            Err(why) => Credential::Malformed(why),
        }
    }

    #[test]
    fn a_token_that_is_not_utf8_is_not_ascii_either_way() {
        let mut headers = HeaderMap::new();
        let value =
            HeaderValue::from_bytes(b"Bearer abc\xff\xfe").unwrap_or(HeaderValue::from_static("x"));
        headers.insert(AUTHORIZATION, value);
        let not_ascii = Credential::Malformed(NOT_ASCII);
        assert_eq!(unchecked_bytes(&headers), Ok(Some(&b"abc\xff\xfe"[..])));
        assert_eq!(unchecked_credential(&headers), not_ascii);
        assert_eq!(credential(&headers), not_ascii);
        assert_eq!(as_the_gate_reads(&headers), not_ascii);
    }
}
