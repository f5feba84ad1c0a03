//! torrc text for each role in the private network.
//!
//! The values follow `shared/reference/private-tor-network.md`: fast voting
//! (20 s) and an onion-service time period that Arti and C tor agree on.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

/// Seconds between consensus votes: fast enough that a network is usable in
/// about 20 s, slow enough for three authorities on two busy cores.
pub const VOTING_INTERVAL_SECS: u32 = 20;

/// Onion-service time period in minutes. With `TestingTorNetwork`, C tor
/// uses 24 voting intervals and ignores the consensus parameter; Arti reads the
/// parameter (minimum 5). Publishing 24 × 20 s = 8 min keeps both in step.
pub const HSDIR_INTERVAL_MINUTES: u32 = 24 * VOTING_INTERVAL_SECS / 60;

/// Lines every node shares.
pub fn common(
    datadir: &Path,
    nickname: &str,
    resolv_conf: &Path,
    owner_pid: u32,
    info_log: bool,
) -> String {
    let d = datadir.display();
    let mut s = String::new();
    let _ = writeln!(s, "TestingTorNetwork 1");
    let _ = writeln!(s, "DataDirectory {d}");
    let _ = writeln!(s, "Nickname {nickname}");
    let _ = writeln!(s, "RunAsDaemon 0");
    // If the test process dies without cleaning up, tor notices and exits.
    let _ = writeln!(s, "__OwningControllerProcess {owner_pid}");
    let _ = writeln!(s, "Log notice file {d}/notice.log");
    if info_log {
        let _ = writeln!(s, "Log info file {d}/info.log");
    }
    let _ = writeln!(s, "SafeLogging 0");
    let _ = writeln!(s, "LogTimeGranularity 1");
    let _ = writeln!(s, "ShutdownWaitLength 0");
    let _ = writeln!(s, "AssumeReachable 1");
    let _ = writeln!(s, "PathsNeededToBuildCircuits 0.67");
    let _ = writeln!(s, "TestingDirAuthVoteExit *");
    let _ = writeln!(s, "TestingDirAuthVoteHSDir *");
    let _ = writeln!(s, "TestingDirAuthVoteGuard *");
    let _ = writeln!(s, "TestingMinExitFlagThreshold 0");
    let _ = writeln!(s, "V3AuthNIntervalsValid 2");
    // Exits must never ask the host's resolver: a loopback responder answers.
    let _ = writeln!(s, "ServerDNSResolvConfFile {}", resolv_conf.display());
    let _ = writeln!(s, "ServerDNSDetectHijacking 0");
    let _ = writeln!(s, "ServerDNSAllowBrokenConfig 1");
    let _ = writeln!(s, "ClientUseIPv6 0");
    s
}

/// A v3 directory authority that is not an exit.
pub fn authority(or_port: u16, dir_port: u16) -> String {
    let v = VOTING_INTERVAL_SECS;
    format!(
        "Address 127.0.0.1\nORPort 127.0.0.1:{or_port}\nDirPort 127.0.0.1:{dir_port}\nSocksPort 0\n\
         ExitPolicy reject *:*\nAuthoritativeDirectory 1\nV3AuthoritativeDirectory 1\n\
         TestingV3AuthInitialVotingInterval {v}\nV3AuthVotingInterval {v}\n\
         TestingV3AuthInitialVoteDelay 4\nV3AuthVoteDelay 4\n\
         TestingV3AuthInitialDistDelay 4\nV3AuthDistDelay 4\n\
         ConsensusParams hsdir_interval={HSDIR_INTERVAL_MINUTES}\n"
    )
}

/// An exit relay. The policy must be `accept *:*`: microdescriptor policy
/// summaries drop address-specific accepts, so `accept 127.0.0.0/8:*` would
/// advertise "rejects everything" and no client would pick the relay.
pub fn exit_relay(or_port: u16) -> String {
    format!(
        "Address 127.0.0.1\nORPort 127.0.0.1:{or_port}\nSocksPort 0\nExitRelay 1\nIPv6Exit 0\n\
         ExitPolicy accept *:*\n"
    )
}

/// A C-tor client with a SOCKS port and onion services in front of local
/// TCP servers.
pub fn onion_host(socks_port: u16, datadir: &Path, services: &[(u16, SocketAddr)]) -> String {
    let mut s = format!("SocksPort 127.0.0.1:{socks_port}\n");
    for (i, (virtual_port, backend)) in services.iter().enumerate() {
        let _ = writeln!(s, "HiddenServiceDir {}/hs{i}", datadir.display());
        let _ = writeln!(s, "HiddenServicePort {virtual_port} {backend}");
    }
    s
}

/// One `DirAuthority` line.
pub fn dir_authority_line(
    nickname: &str,
    or_port: u16,
    v3ident: &str,
    dir_port: u16,
    rsa: &str,
) -> String {
    format!(
        "DirAuthority {nickname} orport={or_port} no-v2 v3ident={v3ident} 127.0.0.1:{dir_port} {rsa}\n"
    )
}
