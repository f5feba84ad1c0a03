//! Peer network addresses (in progress).
