//! Figures for the embedded Tor transport on a private Tor network:
//! network start-up, Arti bootstrap, onion and exit connect times, and the
//! client's memory. Medians over several fresh clients.
//!
//! `cargo run --release --example tor_figures -- 5` (the number of runs).
//! Needs Debian's `tor`; touches nothing beyond 127.0.0.1.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use nightjar_privnet::figures::{median, rss_mib};
use nightjar_privnet::{PrivNet, PrivNetConfig};
use nightjar_tor::{IsolationGroup, Target, TorNetwork, TorSettings, TorTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn round_trip(stream: &mut nightjar_tor::TorStream) {
    stream.write_all(b"ping").await.unwrap();
    stream.flush().await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let echo = nightjar_privnet::echo::spawn_echo_server().expect("echo server");
    let started = Instant::now();
    let net = PrivNet::start(PrivNetConfig {
        onion_services: vec![(8333, echo)],
        dir: std::env::var_os("NIGHTJAR_PRIVNET_DIR").map(Into::into),
        ..PrivNetConfig::default()
    })
    .expect("private network");
    let t = net.timings();
    println!(
        "private network: keys {:.1} s, full consensus {:.1} s, usable {:.1} s after launch ({:.1} s total)",
        t.keys.as_secs_f64(),
        t.consensus.as_secs_f64(),
        t.usable.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let onion: Target = format!("{}:8333", net.onion_services()[0].onion_address)
        .parse()
        .unwrap();
    let exit = Target::Ip(echo);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut boot, mut onion_t, mut exit_t) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let settings = TorSettings::new(dir.path().join("s"), dir.path().join("c"))
            .with_network(TorNetwork::Custom(net.arti_network_file().into()));
        rt.block_on(async {
            let t0 = Instant::now();
            let tor = TorTransport::start(settings).await.unwrap();
            tor.wait_until_ready().await.unwrap();
            let b = t0.elapsed();
            let t1 = Instant::now();
            let mut s = tor.connect(&onion, IsolationGroup::new(1)).await.unwrap();
            let o = t1.elapsed();
            round_trip(&mut s).await;
            let t2 = Instant::now();
            let mut s = tor.connect(&exit, IsolationGroup::new(2)).await.unwrap();
            let e = t2.elapsed();
            round_trip(&mut s).await;
            println!(
                "run {run}: bootstrap {:.3} s, onion connect {:.3} s, exit connect {:.3} s",
                b.as_secs_f64(),
                o.as_secs_f64(),
                e.as_secs_f64()
            );
            boot.push(b);
            onion_t.push(o);
            exit_t.push(e);
            if run + 1 == runs {
                let (rss, peak) = rss_mib("self");
                println!("client process with one bootstrapped Arti client and 2 streams: RSS {rss:.1} MiB, peak {peak:.1} MiB");
            }
        });
    }
    // The first client bootstraps while the directory caches are still
    // fetching the fresh consensus; report it apart from the rest.
    println!(
        "medians over {runs} fresh clients: bootstrap {:.3} s (first: {:.3} s), onion connect {:.3} s, exit connect {:.3} s",
        median(&boot).unwrap_or_default().as_secs_f64(),
        boot[0].as_secs_f64(),
        median(&onion_t).unwrap_or_default().as_secs_f64(),
        median(&exit_t).unwrap_or_default().as_secs_f64()
    );
    net.stop();
}
