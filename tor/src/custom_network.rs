//! Loading a custom Tor network from an Arti-format TOML file.
//!
//! The file may hold exactly these sections of Arti's client configuration,
//! spelled as Arti reads them:
//!
//! - `[tor_network]` — required: `authorities.v3idents` and `fallback_caches`;
//! - `[address_filter]` — e.g. `allow_local_addrs = true` for a loopback network;
//! - `[path_rules]` — e.g. subnet-family prefixes 33/129 so that relays sharing
//!   127.0.0.1 may share a circuit;
//! - `[override_net_params]` — consensus parameter overrides;
//! - `[preemptive_circuits]` — circuit pre-building (a tiny test network may
//!   want none, so that every circuit is built for the stream that uses it).
//!
//! Storage is never taken from the file: nightjar decides where Arti's state
//! lives. A file without `[tor_network]` is refused, because it would silently
//! mean "the public network" — the opposite of what its author wanted.

use std::path::Path;

use arti_client::config::TorClientConfigBuilder;

use crate::error::{TorError, TorErrorKind};

/// The top-level sections a custom network file may contain.
pub const ALLOWED_SECTIONS: &[&str] = &[
    "tor_network",
    "address_filter",
    "path_rules",
    "override_net_params",
    "preemptive_circuits",
];

/// Read `path` and turn it into a client configuration builder.
pub(crate) fn load(path: &Path) -> Result<TorClientConfigBuilder, TorError> {
    let context = format!("loading the custom Tor network file {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| TorError::new(TorErrorKind::Config, &context, e.to_string()))?;
    parse(&text).map_err(|detail| TorError::new(TorErrorKind::Config, context, detail))
}

/// Parse the text of a custom network file; the error names the offending key.
fn parse(text: &str) -> Result<TorClientConfigBuilder, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    for key in table.keys() {
        if key == "storage" {
            return Err(
                "[storage] is not allowed: nightjar places Arti's state and cache in its \
                        own directories (set datadir instead)"
                    .to_string(),
            );
        }
        if !ALLOWED_SECTIONS.contains(&key.as_str()) {
            return Err(format!(
                "unknown section [{key}]; allowed sections are {}",
                ALLOWED_SECTIONS.join(", ")
            ));
        }
    }
    if !table.contains_key("tor_network") {
        return Err(
            "no [tor_network] section: without authorities and fallback caches this \
                    file would mean the public Tor network"
                .to_string(),
        );
    }
    let mut unknown = Vec::new();
    let builder: TorClientConfigBuilder =
        serde_ignored::deserialize(toml::Value::Table(table), |path| {
            unknown.push(path.to_string())
        })
        .map_err(|e| format!("invalid value: {e}"))?;
    if !unknown.is_empty() {
        return Err(format!(
            "unknown key(s) {}; check the spelling against Arti's configuration reference",
            unknown.join(", ")
        ));
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENT: &str = "ACDBE7991A6F0F6B6E2B7F2D1B9B0A1C2D3E4F50";
    const ED: &str = "vvpZnaYawCdGXg/Nkpy35IyJUReryiZI/bgRzhVEepo";

    fn network_section() -> String {
        format!(
            "[tor_network.authorities]\nv3idents = [\"{IDENT}\"]\n\n\
             [[tor_network.fallback_caches]]\nrsa_identity = \"{IDENT}\"\n\
             ed_identity = \"{ED}\"\norports = [\"127.0.0.1:5100\"]\n"
        )
    }

    #[test]
    fn a_private_network_file_builds() {
        let text = format!(
            "{}\n[address_filter]\nallow_local_addrs = true\n\n[path_rules]\n\
             ipv4_subnet_family_prefix = 33\nipv6_subnet_family_prefix = 129\n\n\
             [override_net_params]\nhsdir_interval = 8\n",
            network_section()
        );
        let mut builder = parse(&text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        builder
            .storage()
            .state_dir(arti_client::config::CfgPath::new_literal(
                dir.path().join("s"),
            ))
            .cache_dir(arti_client::config::CfgPath::new_literal(
                dir.path().join("c"),
            ));
        builder.build().unwrap();
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../config/tor-network.example.toml");
        let builder = parse(text).unwrap();
        drop(builder);
    }

    #[test]
    fn missing_network_section_is_refused() {
        let err = parse("[address_filter]\nallow_local_addrs = true\n").unwrap_err();
        assert!(err.contains("public Tor network"), "{err}");
    }

    #[test]
    fn storage_and_unknown_sections_are_named() {
        let err = parse(&format!(
            "{}\n[storage]\ncache_dir = \"/tmp\"\n",
            network_section()
        ))
        .unwrap_err();
        assert!(err.contains("[storage]"), "{err}");
        let err = parse(&format!(
            "{}\n[bridges]\nenabled = true\n",
            network_section()
        ))
        .unwrap_err();
        assert!(err.contains("[bridges]"), "{err}");
    }

    #[test]
    fn misspelled_keys_are_named() {
        let text = format!(
            "{}\n[address_filter]\nallow_local_adrs = true\n",
            network_section()
        );
        let err = parse(&text).unwrap_err();
        assert!(err.contains("allow_local_adrs"), "{err}");
    }

    #[test]
    fn bad_values_are_reported() {
        let text = format!(
            "{}\n[address_filter]\nallow_local_addrs = \"yes please\"\n",
            network_section()
        );
        let err = parse(&text).unwrap_err();
        assert!(err.contains("invalid value"), "{err}");
    }
}
