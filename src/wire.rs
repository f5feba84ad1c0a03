//! Bitcoin P2P wire formats (being written).
