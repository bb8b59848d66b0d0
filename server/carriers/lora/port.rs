//! A byte pipe to a modem: a serial port (a USB modem, or a pseudo-terminal
//! the simulator made) or an in-memory pair for tests in paused time.
//!
//! A serial port is served by two threads (blocking reads with a short
//! timeout, and blocking writes) joined to the async side by channels, so
//! the drivers are plain tokio code over [`Port`]. A closed channel means
//! the modem is gone (unplugged, or the pseudo-terminal was closed).

use std::io::{Read, Write};
use std::time::Duration;

use tokio::sync::mpsc;

/// RNode and RYLR both talk at 115200 8N1.
pub const BAUD: u32 = 115_200;
/// How long a read blocks before the reader thread checks whether anyone
/// still listens.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Chunks in flight between a reader thread and its driver; a driver that
/// stops reading makes the thread wait, not grow.
const CHANNEL_DEPTH: usize = 256;
/// Give up on a write the modem has not taken for this long (a stuck
/// port): the driver then sees the port closed and reopens it.
const WRITE_STALL: Duration = Duration::from_secs(5);

/// One end of a byte pipe.
#[derive(Debug)]
pub struct Port {
    pub name: String,
    pub rx: mpsc::Receiver<Vec<u8>>,
    pub tx: mpsc::Sender<Vec<u8>>,
}

impl Port {
    /// Two ends joined in memory.
    pub fn pair(a: &str, b: &str) -> (Port, Port) {
        let (atx, brx) = mpsc::channel(CHANNEL_DEPTH);
        let (btx, arx) = mpsc::channel(CHANNEL_DEPTH);
        (
            Port {
                name: a.to_string(),
                rx: arx,
                tx: atx,
            },
            Port {
                name: b.to_string(),
                rx: brx,
                tx: btx,
            },
        )
    }

    /// Opens a serial device at [`BAUD`] 8N1 without flow control.
    pub fn open_serial(path: &str) -> std::io::Result<Port> {
        let port = serialport::new(path, BAUD)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .timeout(READ_TIMEOUT)
            .open_native()
            .map_err(|e| std::io::Error::other(format!("cannot open {path}: {e}")))?;
        Port::from_tty(port, path)
    }

    /// Serves an open terminal (a device, or a pseudo-terminal end) with a
    /// reader and a writer thread.
    pub fn from_tty(port: serialport::TTYPort, name: &str) -> std::io::Result<Port> {
        let mut reader = port;
        let mut writer = reader
            .try_clone_native()
            .map_err(|e| std::io::Error::other(format!("cannot clone {name}: {e}")))?;
        let _ = serialport::SerialPort::set_timeout(&mut reader, READ_TIMEOUT);
        let _ = serialport::SerialPort::set_timeout(&mut writer, READ_TIMEOUT);
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
        let label = name.to_string();
        std::thread::Builder::new()
            .name(format!("serial-rd {name}"))
            .spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    if in_tx.is_closed() {
                        return;
                    }
                    match reader.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if in_tx.blocking_send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::TimedOut
                                || e.kind() == std::io::ErrorKind::Interrupted
                                || e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            tracing::debug!(port = %label, "serial read ended: {e}");
                            return;
                        }
                    }
                }
            })?;
        let label = name.to_string();
        std::thread::Builder::new()
            .name(format!("serial-wr {name}"))
            .spawn(move || {
                while let Some(chunk) = out_rx.blocking_recv() {
                    let mut rest = &chunk[..];
                    let started = std::time::Instant::now();
                    while !rest.is_empty() {
                        match writer.write(rest) {
                            Ok(0) => return,
                            Ok(n) => rest = &rest[n..],
                            Err(e)
                                if (e.kind() == std::io::ErrorKind::TimedOut
                                    || e.kind() == std::io::ErrorKind::Interrupted
                                    || e.kind() == std::io::ErrorKind::WouldBlock)
                                    && started.elapsed() < WRITE_STALL => {}
                            Err(e) => {
                                tracing::debug!(port = %label, "serial write ended: {e}");
                                return;
                            }
                        }
                    }
                }
            })?;
        Ok(Port {
            name: name.to_string(),
            rx: in_rx,
            tx: out_tx,
        })
    }

    /// Writes bytes; an error means the modem is gone.
    pub async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.tx
            .send(bytes.to_vec())
            .await
            .map_err(|_| gone(&self.name))
    }

    /// The next chunk of bytes; an error means the modem is gone.
    pub async fn read(&mut self) -> std::io::Result<Vec<u8>> {
        self.rx.recv().await.ok_or_else(|| gone(&self.name))
    }
}

fn gone(name: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        format!("{name}: the modem is gone (unplugged or closed)"),
    )
}
