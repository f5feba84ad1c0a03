//! One line for an error and its causes, each said once.
//!
//! Many of our errors put their cause in their own message ("cannot open
//! X: No such file") and also name it as their `source`, as `thiserror`
//! does for a field called `source`. Printing the chain the usual way
//! (`{:#}`) then says the operating system's error twice. Rather than
//! forbid one of the two conventions everywhere, the chain is printed
//! here with each cause left out when the text before it already says it.

use std::error::Error;

/// `error` and its chain of causes, joined with ": ", skipping any cause
/// whose text the message so far already contains.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot lock {path}: {source}")]
    struct Repeats {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot lock {path}")]
    struct Relies {
        path: &'static str,
        source: std::io::Error,
    }

    fn os_error() -> std::io::Error {
        std::io::Error::from_raw_os_error(30)
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let e = Repeats {
            path: "/d/.lock",
            source: os_error(),
        };
        let text = error_chain(&e);
        assert_eq!(text.matches("os error 30").count(), 1, "{text}");
    }

    #[test]
    fn a_cause_missing_from_the_message_is_added() {
        let e = Relies {
            path: "/d/.lock",
            source: os_error(),
        };
        let text = error_chain(&e);
        assert!(text.starts_with("cannot lock /d/.lock: "), "{text}");
        assert_eq!(text.matches("os error 30").count(), 1, "{text}");
    }

    #[test]
    fn anyhow_context_chains_are_deduplicated_too() {
        let e = anyhow::Error::new(Repeats {
            path: "/d/.lock",
            source: os_error(),
        })
        .context("starting");
        let text = error_chain(e.as_ref());
        assert!(text.starts_with("starting: cannot lock"), "{text}");
        assert_eq!(text.matches("os error 30").count(), 1, "{text}");
    }
}
