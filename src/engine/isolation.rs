//! Which Tor circuits a connection may share: the isolation policy.
//!
//! Arti builds circuits per isolation group; two streams in different groups
//! never share a circuit. Grouping by connection kind keeps, say, a feeler's
//! probe from riding the circuit of a long-lived peer (an exit watching both
//! would learn they are one node). Rotating the per-kind groups bounds how
//! much one exit sees over time. Under `--privacy` every connection stands
//! alone.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use nightjar_tor::IsolationGroup;

use super::config::IsolationScope;
use crate::peer::ConnectionKind;

/// How long a per-kind group takes new connections before a fresh one
/// replaces it (Tor's `MaxCircuitDirtiness` is 10 minutes: we follow it).
pub const ISOLATION_ROTATION: Duration = Duration::from_secs(10 * 60);

/// A connection's isolation: the Arti group and a label for logs and
/// `getpeerinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Isolation {
    /// The group handed to the Tor client.
    pub group: IsolationGroup,
    /// Shared by one kind, or owned by one connection.
    pub scope: GroupScope,
}

/// Who a group belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupScope {
    /// Shared by connections of one kind (the label names the kind).
    Kind(&'static str),
    /// Owned by a single connection.
    Connection,
}

impl fmt::Display for Isolation {
    /// `regular/3` for a shared group, `conn/17` for a private one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            GroupScope::Kind(kind) => write!(f, "{kind}/{}", self.group.id()),
            GroupScope::Connection => write!(f, "conn/{}", self.group.id()),
        }
    }
}

/// Hands out isolation groups.
#[derive(Debug)]
pub struct IsolationPolicy {
    scope: IsolationScope,
    next_id: u64,
    /// Per-kind groups currently taking new connections, and since when.
    current: BTreeMap<&'static str, (IsolationGroup, Instant)>,
}

impl IsolationPolicy {
    /// A policy with the given scope.
    pub fn new(scope: IsolationScope) -> Self {
        IsolationPolicy {
            scope,
            next_id: 1,
            current: BTreeMap::new(),
        }
    }

    /// A group nobody else will ever use: for one connection, or for a
    /// single lookup such as a DNS seed query.
    pub fn fresh(&mut self) -> IsolationGroup {
        let group = IsolationGroup::new(self.next_id);
        self.next_id += 1;
        group
    }

    /// The isolation for a new connection of `kind` opened at `now`.
    /// Returns the group it replaced, if the kind's group just rotated.
    pub fn assign(
        &mut self,
        kind: ConnectionKind,
        now: Instant,
    ) -> (Isolation, Option<IsolationGroup>) {
        let own_group = self.scope == IsolationScope::PerConnection
            || matches!(
                kind,
                ConnectionKind::Feeler | ConnectionKind::PrivateBroadcast
            );
        if own_group {
            let group = self.fresh();
            return (
                Isolation {
                    group,
                    scope: GroupScope::Connection,
                },
                None,
            );
        }
        let label = kind.label();
        let mut retired = None;
        let group = match self.current.get(label) {
            Some(&(group, since)) if now.saturating_duration_since(since) < ISOLATION_ROTATION => {
                group
            }
            previous => {
                retired = previous.map(|&(g, _)| g);
                let group = self.fresh();
                self.current.insert(label, (group, now));
                group
            }
        };
        (
            Isolation {
                group,
                scope: GroupScope::Kind(label),
            },
            retired,
        )
    }

    /// Whether `group` still takes new connections (so its circuits must
    /// be kept even when no connection uses it right now).
    pub fn is_current(&self, group: IsolationGroup) -> bool {
        self.current.values().any(|&(g, _)| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ServiceFlags;

    #[test]
    fn per_kind_groups_are_shared_rotated_and_separate_between_kinds() {
        let t0 = Instant::now();
        let mut p = IsolationPolicy::new(IsolationScope::PerKind);
        let regular = ConnectionKind::Regular(ServiceFlags::NONE);
        let (a, _) = p.assign(regular, t0);
        let (b, _) = p.assign(regular, t0 + Duration::from_secs(1));
        let (m, _) = p.assign(ConnectionKind::Manual, t0);
        assert_eq!(a, b);
        assert_ne!(a.group, m.group);
        assert_eq!(a.to_string(), format!("regular/{}", a.group.id()));
        let (c, retired) = p.assign(regular, t0 + ISOLATION_ROTATION);
        assert_ne!(c.group, a.group);
        assert_eq!(retired, Some(a.group));
        assert!(!p.is_current(a.group));
        assert!(p.is_current(c.group));
    }

    #[test]
    fn feelers_and_privacy_get_a_group_each() {
        let t0 = Instant::now();
        let mut p = IsolationPolicy::new(IsolationScope::PerKind);
        let (f1, _) = p.assign(ConnectionKind::Feeler, t0);
        let (f2, _) = p.assign(ConnectionKind::Feeler, t0);
        assert_ne!(f1.group, f2.group);
        assert_eq!(f1.scope, GroupScope::Connection);

        let mut p = IsolationPolicy::new(IsolationScope::PerConnection);
        let (a, _) = p.assign(ConnectionKind::Manual, t0);
        let (b, _) = p.assign(ConnectionKind::Manual, t0);
        assert_ne!(a.group, b.group);
        assert!(!p.is_current(a.group));
    }
}
