//! Address manager (in progress).
