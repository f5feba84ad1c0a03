//! One daemon per data directory (issue 16, D4): a second `nightjar` on a
//! directory in use refuses to start, says why, and touches nothing; the
//! first keeps running and answering.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

#[path = "support/daemon_log.rs"]
mod daemon_log;
#[path = "support/nightjar_node.rs"]
mod nightjar_node;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nightjar_node::Nightjar;

#[test]
fn a_second_daemon_on_the_same_datadir_refuses_to_start() {
    // Tor off and no peers: nothing leaves the machine.
    let mut first = Nightjar::spawn(["--no-tor"]);
    first.wait_for(Duration::from_secs(60), "RPC", |n| {
        n.rpc(&["getblockcount"]).is_some()
    });
    let headers = first.dir().join("regtest/headers.dat");
    let before = std::fs::metadata(&headers).map(|m| m.len()).ok();

    let mut second = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["--network", "regtest", "--no-tor", "--datadir"])
        .arg(first.dir())
        .arg("--rpcport")
        .arg(nightjar_testpeer::free_port().unwrap().to_string())
        .env("HOME", first.dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second daemon kept running on a locked datadir");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = second.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success(), "{text}");
    assert!(text.contains("another nightjar"), "{text}");
    assert_eq!(
        std::fs::metadata(&headers).map(|m| m.len()).ok(),
        before,
        "the refused daemon wrote nothing"
    );
    assert!(first.rpc(&["getblockcount"]).is_some(), "the first goes on");
    first.stop();
}
