//! A TCP echo server on 127.0.0.1: the simplest "local server" to put
//! behind an onion service or reach through an exit.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// Start an echo server (a thread per connection) for the life of the
/// process; returns where it listens.
pub fn spawn_echo_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("privnet-echo".into())
        .spawn(move || {
            for mut conn in listener.incoming().map_while(Result::ok) {
                let _ = std::thread::Builder::new().spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        let Some(chunk) = buf.get(..n) else { break };
                        if n == 0 || conn.write_all(chunk).is_err() {
                            break;
                        }
                    }
                });
            }
        })?;
    Ok(addr)
}
