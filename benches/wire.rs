//! Wire benchmarks (written with the wire codec).

fn main() {}
