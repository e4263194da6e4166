//! An error and every cause under it on one line, for the log: the client
//! sees a generic description, the operator sees `could not connect to the
//! upstream http://10.0.0.5:8080: client error (Connect): tcp connect error:
//! Connection refused (os error 111)` under the same request id.

use std::error::Error;
use std::fmt;

/// Displays `error: cause: cause ...`. A cause whose text the error before
/// it already ends with (`store: disk I/O error` over `disk I/O error`) is
/// not repeated.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !shown.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(ErrorChain(&e).to_string(), "outer: inner");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("store: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_the_error_already_shows_is_not_repeated() {
        let e = Repeats(std::io::Error::other("disk I/O error"));
        assert_eq!(ErrorChain(&e).to_string(), "store: disk I/O error");
    }
}
