//! The tokio task that hosts a [`PeerMachine`] over a transport session.
//!
//! Shape (from the seeds' actor design, tightened):
//! - the *reader* half runs in its own task and only decodes messages into a
//!   small bounded channel; when the peer task lags, the channel fills and
//!   the reader stops reading, so a fast peer cannot queue unbounded work;
//! - the *peer task* owns the machine and the writer, waits on the reader,
//!   engine commands and the machine's next deadline (no polling timer), and
//!   forwards events to the engine over a bounded channel (waiting when the
//!   engine is busy: backpressure again);
//! - every exit path reports [`PeerReport::Closed`] exactly once, with a
//!   reason — even if the task is aborted or panics (a drop guard reports it).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::peer::machine::{PeerEvent, PeerMachine};
use crate::peer::reason::DisconnectReason;
pub use crate::peer::report::{ConnId, PeerCommand, PeerReport, PeerUpdate};
use crate::transport::{MessageReader, MessageWriter, PeerStream, Session};
use crate::wire::NetworkMessage;

/// Decoded messages the reader may queue ahead of the peer task. Small on
/// purpose: this is the backpressure point, and it is counted in messages
/// of up to 4 MB each. While the peer task waits on a write to a peer that
/// does not read (up to [`WRITE_STALL_TIMEOUT`]), that peer can have this
/// many full-size messages queued, one more in the reader's hands and one
/// being assembled by the transport: 2 keeps that near 16 MB per peer, as
/// Core's receive buffer keeps it near 5 MB, and a handshake or header
/// sync never has more than one message in flight anyway.
pub const READER_QUEUE: usize = 2;

/// Engine commands that may wait for the peer task.
pub const COMMAND_QUEUE: usize = 64;

/// How long one message write may block before we conclude the peer has
/// stopped reading. A 4 MB message through a slow Tor circuit (≈100 kB/s)
/// takes 40 s; a minute allows for that.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The engine's end of a running peer task.
#[derive(Debug)]
pub struct PeerHandle {
    conn: ConnId,
    commands: mpsc::Sender<PeerCommand>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// The connection's id.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Queue a command; waits while the queue is full. `false` if the task
    /// has ended.
    pub async fn command(&self, cmd: PeerCommand) -> bool {
        self.commands.send(cmd).await.is_ok()
    }

    /// Queue a command without waiting; `false` if the queue is full or the
    /// task has ended.
    pub fn try_command(&self, cmd: PeerCommand) -> bool {
        self.commands.try_send(cmd).is_ok()
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stop the task now (it still reports `Closed`).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// The clock of the peer task. Under tokio's paused test clock this is
/// simulated time.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Start a peer task for `session`, driven by `machine`, reporting to
/// `to_engine`.
pub fn spawn_peer<S: PeerStream>(
    conn: ConnId,
    session: Session<S>,
    machine: PeerMachine,
    to_engine: mpsc::Sender<PeerUpdate>,
) -> PeerHandle {
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    // Created outside the task so that even a task aborted before its first
    // poll drops it, and so reports `Closed`.
    let mut closed = ClosedReport {
        conn,
        to_engine: Some(to_engine.clone()),
    };
    let task = tokio::spawn(async move {
        let (reader, mut writer) = session.into_split();
        let reason = run(conn, reader, &mut writer, machine, &to_engine, commands_rx).await;
        tracing::debug!(%conn, %reason, "peer connection closed");
        // Best effort: tell the peer we are done.
        let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
        closed.send(reason).await;
    });
    PeerHandle {
        conn,
        commands: commands_tx,
        task,
    }
}

/// Sends `Closed` once: explicitly at a normal exit, from `Drop` if the task
/// is aborted or panics before that.
struct ClosedReport {
    conn: ConnId,
    to_engine: Option<mpsc::Sender<PeerUpdate>>,
}

impl ClosedReport {
    async fn send(&mut self, reason: DisconnectReason) {
        if let Some(tx) = self.to_engine.take() {
            let _ = tx
                .send(PeerUpdate {
                    conn: self.conn,
                    report: PeerReport::Closed(reason),
                })
                .await;
        }
    }
}

impl Drop for ClosedReport {
    fn drop(&mut self) {
        let Some(tx) = self.to_engine.take() else {
            return;
        };
        let update = PeerUpdate {
            conn: self.conn,
            report: PeerReport::Closed(DisconnectReason::Local("peer task aborted".into())),
        };
        if let Err(mpsc::error::TrySendError::Full(update)) = tx.try_send(update) {
            // The engine is busy: deliver from a fresh task rather than lose it.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = tx.send(update).await;
                });
            }
        }
    }
}

/// Aborts a task when dropped: the reader never outlives its peer task.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type ReadItem = Result<(NetworkMessage, usize), DisconnectReason>;

/// The reader half: decode and forward until an error, which is forwarded
/// too and ends the loop.
async fn read_loop<R: AsyncRead + Unpin>(mut reader: MessageReader<R>, tx: mpsc::Sender<ReadItem>) {
    loop {
        let item = reader.next().await;
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// The peer task's loop; returns why the connection ended.
async fn run<R, W>(
    conn: ConnId,
    reader: MessageReader<R>,
    writer: &mut MessageWriter<W>,
    mut machine: PeerMachine,
    to_engine: &mpsc::Sender<PeerUpdate>,
    mut commands: mpsc::Receiver<PeerCommand>,
) -> DisconnectReason
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let (read_tx, mut read_rx) = mpsc::channel(READER_QUEUE);
    let _reader = AbortOnDrop(tokio::spawn(read_loop(reader, read_tx)));
    loop {
        while let Some(msg) = machine.poll_transmit() {
            match tokio::time::timeout(WRITE_STALL_TIMEOUT, writer.send(&msg)).await {
                Ok(Ok(written)) => super::traffic::record_sent(written),
                Ok(Err(e)) => machine.close(DisconnectReason::Io(e.to_string())),
                Err(_) => machine.close(DisconnectReason::WriterStalled),
            }
        }
        while let Some(event) = machine.poll_event() {
            if let PeerEvent::Disconnect(reason) = event {
                return reason;
            }
            let update = PeerUpdate {
                conn,
                report: PeerReport::Event(event),
            };
            if to_engine.send(update).await.is_err() {
                return DisconnectReason::Local("engine stopped".into());
            }
        }
        let deadline = machine.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            item = read_rx.recv() => match item {
                Some(Ok((msg, wire_len))) => {
                    super::traffic::record_received(wire_len);
                    machine.handle_message(now(), msg, wire_len);
                }
                Some(Err(reason)) => machine.close(reason),
                None => machine.close(DisconnectReason::Local("reader stopped".into())),
            },
            cmd = commands.recv() => match cmd {
                Some(PeerCommand::Send(msg)) => machine.send(now(), msg),
                Some(PeerCommand::Misbehaving { points, what }) => machine.misbehave(points, what),
                Some(PeerCommand::Disconnect(why)) => machine.close(DisconnectReason::Local(why)),
                None => machine.close(DisconnectReason::Local("engine dropped the connection".into())),
            },
            () = sleep_until_opt(deadline) => machine.handle_timeout(now()),
        }
    }
}

/// Sleep until `deadline`, or forever without one.
pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
