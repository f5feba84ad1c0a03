//! Address manager benchmarks (written with the address manager).

fn main() {}
