//! What the radio sync needs of a modem, and how it gets one. relay/
//! defines these two traits; carriers/lora implements them for the serial
//! modems (RNode, RYLR998) and their simulator, and app.rs hands an opener
//! in. The sync never names a concrete modem.

use crate::domain::lora::{Received, Settings};
use futures_util::future::BoxFuture;

/// A modem that failed, in its own words (for the radio page and the log).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ModemFailure(pub String);

/// An open, configured LoRa modem: it moves opaque frames of at most
/// [`FrameModem::mtu`] bytes and reports the signal of each it hears.
pub trait FrameModem: Send {
    /// The settings the modem runs with (read back from it).
    fn settings(&self) -> &Settings;
    /// The longest frame it takes.
    fn mtu(&self) -> usize;
    /// What the modem says it is ("RNode firmware 1.86 (ESP32)").
    fn identity(&self) -> String;
    /// Frames and bytes the driver threw away as noise.
    fn noise_frames(&self) -> u64;
    /// Sends `frames` back to back; returns once the modem has taken them.
    fn send<'a>(&'a mut self, frames: &'a [Vec<u8>]) -> BoxFuture<'a, Result<(), ModemFailure>>;
    /// The next frame heard; cancel-safe.
    fn recv(&mut self) -> BoxFuture<'_, Result<Received, ModemFailure>>;
    /// Closes the port (leaving the modem in a quiet state).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Where the modem is and how to open it: a serial device, or a radio of
/// the simulator.
pub trait ModemOpener: Send + Sync {
    /// The port as the page shows it ("/dev/ttyUSB0").
    fn name(&self) -> String;
    /// Opens, detects and configures the modem.
    fn open(&self) -> BoxFuture<'_, Result<Box<dyn FrameModem>, ModemFailure>>;
}
