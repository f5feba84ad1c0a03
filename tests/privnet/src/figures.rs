//! Small helpers for the figure-printing examples and benches: medians, a
//! process's memory, read from `/proc`, and where mined chains are cached.

use std::path::PathBuf;

/// Seed of the mainnet-shaped chain the scale figures use
/// (`mine_mainnet_shaped_chain`).
pub const SHAPED_CHAIN_SEED: u64 = 17;

/// Its tip time, fixed so that a cached file stays valid:
/// 2026-12-01T00:00:00Z.
pub const SHAPED_CHAIN_END_UNIX: u64 = 1_796_083_200;

/// Where `benches/chain_scale.rs` caches the `headers.dat` of a
/// mainnet-shaped regtest chain of `count` headers, and where
/// `examples/scale_figures.rs` looks for it: `NIGHTJAR_BENCH_CACHE`, by
/// default `~/.cache/nightjar-bench`.
pub fn shaped_chain_file(count: usize) -> PathBuf {
    let dir = std::env::var_os("NIGHTJAR_BENCH_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache")
                .join("nightjar-bench")
        },
        PathBuf::from,
    );
    dir.join(format!(
        "regtest-shaped-{count}-{SHAPED_CHAIN_SEED}-{SHAPED_CHAIN_END_UNIX}.dat"
    ))
}

/// The median (the upper one for an even count); `None` for no values.
pub fn median<T: PartialOrd + Copy>(values: &[T]) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied()
}

/// (current RSS, peak RSS) of process `pid` in MiB; `self` for this
/// process. Zeros when `/proc` cannot tell (not Linux, process gone).
pub fn rss_mib(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3, 1, 2]), Some(2));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median::<u8>(&[]), None);
    }

    #[test]
    fn this_process_has_memory() {
        let (rss, peak) = rss_mib("self");
        assert!(rss > 0.0 && peak >= rss, "{rss} {peak}");
    }
}
