//! The channel a sync runs over: incoming messages, and two ways out —
//! control messages (never blocking, so acknowledgements always get
//! through) and item data (bounded, so a large item streams). A carrier
//! opens it: the live link over Noise frames (`link.rs`), the radio over
//! its session's records ([`Channel::over_records`]).

use super::msg::Msg;
use super::{LinkError, LinkResult};
use std::time::Duration;
use tokio::sync::mpsc;

/// A channel's two ways out, control first so acknowledgements never wait
/// behind item data; `None` once both are closed.
pub(crate) struct Outgoing {
    pub(crate) control: mpsc::UnboundedReceiver<Msg>,
    pub(crate) data: mpsc::Receiver<Msg>,
    control_open: bool,
    data_open: bool,
}

impl Outgoing {
    pub(crate) fn new(
        control: mpsc::UnboundedReceiver<Msg>,
        data: mpsc::Receiver<Msg>,
    ) -> Outgoing {
        Outgoing {
            control,
            data,
            control_open: true,
            data_open: true,
        }
    }

    /// The next message to send, or a `Ping` after `keepalive` of quiet.
    pub(crate) async fn next(&mut self, keepalive: Option<Duration>) -> Option<Msg> {
        while self.control_open || self.data_open {
            tokio::select! {
                biased;
                m = self.control.recv(), if self.control_open => match m {
                    Some(m) => return Some(m),
                    None => self.control_open = false,
                },
                m = self.data.recv(), if self.data_open => match m {
                    Some(m) => return Some(m),
                    None => self.data_open = false,
                },
                _ = tokio::time::sleep(keepalive.unwrap_or(Duration::MAX)), if keepalive.is_some() => {
                    return Some(Msg::Ping);
                }
            }
        }
        None
    }
}

/// The encrypted channel after the handshake: incoming messages, and two
/// ways out — control messages (never blocking, so acknowledgements always
/// get through) and item data (bounded, so a large item streams).
pub(crate) struct Channel {
    pub(crate) incoming: mpsc::Receiver<LinkResult<Msg>>,
    pub(crate) control: mpsc::UnboundedSender<Msg>,
    pub(crate) data: mpsc::Sender<Msg>,
    pub(crate) reader: tokio::task::JoinHandle<()>,
    pub(crate) writer: tokio::task::JoinHandle<()>,
    /// How long closing waits for the last messages to go out.
    pub(crate) close_wait: Duration,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Channel {
    /// A channel over a carrier that moves whole records reliably and in
    /// order (the radio's session layer): each record is one postcard(Msg).
    /// Closing `out` tells the carrier this side has nothing more to say.
    /// The plumbing every carrier shares: the queues, a reader task that
    /// feeds `incoming` and a writer task that drains the control and data
    /// queues; `read` and `write` are the carrier's own loops.
    pub(crate) fn spawn<R, W>(
        data_depth: usize,
        close_wait: Duration,
        read: impl FnOnce(mpsc::Sender<LinkResult<Msg>>) -> R,
        write: impl FnOnce(Outgoing) -> W,
    ) -> Channel
    where
        R: Future<Output = ()> + Send + 'static,
        W: Future<Output = ()> + Send + 'static,
    {
        let (in_tx, incoming) = mpsc::channel(4);
        let (control, control_rx) = mpsc::unbounded_channel::<Msg>();
        let (data, data_rx) = mpsc::channel::<Msg>(data_depth);
        let reader = tokio::spawn(read(in_tx));
        let writer = tokio::spawn(write(Outgoing::new(control_rx, data_rx)));
        Channel {
            incoming,
            control,
            data,
            reader,
            writer,
            close_wait,
        }
    }

    /// A channel over a carrier that moves whole records reliably and in
    /// order (the radio's session layer): each record is one postcard(Msg).
    /// Closing `out` tells the carrier this side has nothing more to say.
    pub(crate) fn over_records(
        out: mpsc::Sender<Vec<u8>>,
        mut records: mpsc::Receiver<Vec<u8>>,
        close_wait: Duration,
    ) -> Channel {
        let read = |in_tx: mpsc::Sender<LinkResult<Msg>>| async move {
            loop {
                let got = match records.recv().await {
                    None => Err(LinkError::Closed),
                    Some(r) => postcard::from_bytes::<Msg>(&r)
                        .map_err(|e| LinkError::Protocol(format!("a record does not decode: {e}"))),
                };
                let stop = got.is_err();
                if in_tx.send(got).await.is_err() || stop {
                    return;
                }
            }
        };
        let write = |mut outgoing: Outgoing| async move {
            // The radio's session keeps its own watch on silence: no pings.
            while let Some(msg) = outgoing.next(None).await {
                let record = postcard::to_allocvec(&msg).expect("messages serialise");
                if out.send(record).await.is_err() {
                    return;
                }
            }
        };
        Channel::spawn(1, close_wait, read, write)
    }

    /// Let everything queued go out (the last acknowledgements, `Done`),
    /// then close the connection.
    pub(crate) async fn close(mut self) {
        let (control, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.control, control));
        let (data, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.data, data));
        let _ = tokio::time::timeout(self.close_wait, &mut self.writer).await;
    }

    pub(crate) async fn recv(&mut self) -> LinkResult<Msg> {
        match self.incoming.recv().await {
            Some(Ok(Msg::Refuse(why))) => Err(LinkError::Refused(why)),
            Some(r) => r,
            None => Err(LinkError::Closed),
        }
    }

    pub(crate) fn send(&self, m: Msg) -> LinkResult<()> {
        self.control.send(m).map_err(|_| LinkError::Closed)
    }
}
