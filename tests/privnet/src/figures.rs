//! Small helpers for the figure-printing examples: medians and a process's
//! memory, read from `/proc`.

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
