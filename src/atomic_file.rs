//! Crash-safe file replacement (in progress).
