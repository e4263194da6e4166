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

fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// Find the bearer token in `headers`.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credential::Missing;
    };
    if values.next().is_some() {
        return Credential::Malformed("more than one Authorization header");
    }
    let Ok(text) = value.to_str() else {
        return Credential::Malformed("the Authorization header is not ASCII");
    };
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::Missing;
    }
    let token = rest.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    if token.is_empty() {
        return Credential::Malformed("the Bearer credential is empty");
    }
    if body.is_empty() || !body.bytes().all(is_b64token_char) {
        return Credential::Malformed("the Bearer credential is not a single token");
    }
    Credential::Token(token)
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
        ];
        for (values, want) in cases {
            assert_eq!(&credential(&with(values)), want, "{values:?}");
        }
    }
}
