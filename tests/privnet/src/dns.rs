//! A loopback DNS responder for the exit relays.
//!
//! C tor's exits resolve names for clients and, at start-up, probe their
//! resolver for DNS hijacking. Left to `/etc/resolv.conf` they would send those
//! queries off the machine. Every exit in the private network is pointed at
//! this responder instead: names under `.test` and `localhost` answer
//! 127.0.0.1, everything else is NXDOMAIN. It records the names it was asked,
//! so tests can prove a lookup went through an exit.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, QTYPE, RCODE, ResourceRecord, TYPE};

/// How long answers may be cached: short, tests change nothing anyway.
const ANSWER_TTL: u32 = 60;

/// How often the serving thread checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Does this (lowercase, dot-free at the end) name resolve to 127.0.0.1?
fn is_local_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".test") || name.ends_with(".localhost")
}

/// A running responder; stops when dropped.
#[derive(Debug)]
pub struct DnsResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    queries: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsResponder {
    /// Bind to a free UDP port on 127.0.0.1 and start answering.
    pub fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(POLL_INTERVAL))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let queries = queries.clone();
            std::thread::Builder::new()
                .name("privnet-dns".into())
                .spawn(move || serve(&socket, &stop, &queries))?
        };
        Ok(DnsResponder {
            addr,
            stop,
            queries,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every name asked so far, in order.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answer queries until told to stop. Malformed packets are ignored.
fn serve(socket: &UdpSocket, stop: &AtomicBool, queries: &Mutex<Vec<String>>) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(reply) = answer(&buf[..len], queries) else {
            continue;
        };
        let _ = socket.send_to(&reply, from);
    }
}

/// Build the reply to one query packet.
fn answer(query: &[u8], log: &Mutex<Vec<String>>) -> Option<Vec<u8>> {
    let query = Packet::parse(query).ok()?;
    let mut reply = Packet::new_reply(query.id());
    let mut known = true;
    for question in &query.questions {
        let name = question
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Ok(mut log) = log.lock() {
            log.push(name.clone());
        }
        reply.questions.push(question.clone());
        if !is_local_name(&name) {
            known = false;
            continue;
        }
        if question.qtype == QTYPE::TYPE(TYPE::A) {
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                ANSWER_TTL,
                RData::A(A {
                    address: u32::from(Ipv4Addr::LOCALHOST),
                }),
            ));
        }
    }
    if !known {
        *reply.rcode_mut() = RCODE::NameError;
    }
    reply.build_bytes_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Name, Question};

    fn ask(responder: &DnsResponder, name: &str) -> (RCODE, Vec<u32>) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut q = Packet::new_query(7);
        q.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(TYPE::A),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        socket
            .send_to(&q.build_bytes_vec().unwrap(), responder.addr())
            .unwrap();
        let mut buf = [0u8; 1500];
        let len = socket.recv(&mut buf).unwrap();
        let reply = Packet::parse(&buf[..len]).unwrap();
        let addrs = reply
            .answers
            .iter()
            .filter_map(|rr| match &rr.rdata {
                RData::A(a) => Some(a.address),
                _ => None,
            })
            .collect();
        (reply.rcode(), addrs)
    }

    #[test]
    fn test_names_resolve_to_loopback_others_do_not() {
        let r = DnsResponder::start().unwrap();
        assert_eq!(
            ask(&r, "seed.nightjar.test"),
            (RCODE::NoError, vec![0x7f00_0001])
        );
        assert_eq!(ask(&r, "example.com").0, RCODE::NameError);
        assert_eq!(r.queries(), vec!["seed.nightjar.test", "example.com"]);
    }
}
