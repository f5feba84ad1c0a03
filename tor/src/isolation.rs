//! Isolation groups: nightjar's names for "streams that may share a circuit".
//!
//! The engine decides isolation in its own terms (one group per connection
//! kind, or one per connection under `--privacy`) and names groups with plain
//! numbers so that its decisions stay deterministic and testable. This module
//! maps those numbers onto Arti's opaque `IsolationToken`s. Releasing a group
//! forgets its token: the next stream in a group with the same number gets
//! fresh circuits, which is how the engine rotates a kind's circuits.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use arti_client::IsolationToken;

/// A set of streams that may share circuits with each other and with no one else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsolationGroup(u64);

impl IsolationGroup {
    /// The group with this number; numbers are chosen by the caller.
    pub fn new(id: u64) -> Self {
        IsolationGroup(id)
    }

    /// The group's number.
    pub fn id(self) -> u64 {
        self.0
    }
}

impl fmt::Display for IsolationGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iso-{}", self.0)
    }
}

/// The live mapping from groups to Arti tokens.
#[derive(Debug, Default)]
pub(crate) struct IsolationRegistry {
    tokens: Mutex<HashMap<IsolationGroup, IsolationToken>>,
}

impl IsolationRegistry {
    /// The token of `group`, created on first use.
    pub(crate) fn token(&self, group: IsolationGroup) -> IsolationToken {
        *self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(group)
            .or_insert_with(IsolationToken::new)
    }

    /// Forget `group`'s token; returns whether it existed.
    pub(crate) fn release(&self, group: IsolationGroup) -> bool {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&group)
            .is_some()
    }

    /// How many groups currently hold a token.
    pub(crate) fn len(&self) -> usize {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_group_same_token_until_released() {
        let reg = IsolationRegistry::default();
        let a = IsolationGroup::new(1);
        let b = IsolationGroup::new(2);
        let ta = reg.token(a);
        assert_eq!(reg.token(a), ta);
        assert_ne!(reg.token(b), ta);
        assert_eq!(reg.len(), 2);
        assert!(reg.release(a));
        assert!(!reg.release(a));
        assert_ne!(reg.token(a), ta, "a released group must get fresh circuits");
        assert_eq!(a.to_string(), "iso-1");
    }
}
