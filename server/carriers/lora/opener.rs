//! The LoRa modems behind the radio sync's traits: a [`Modem`] is a
//! [`FrameModem`], and a [`Serial`] device (a USB adapter, or a radio of
//! `cairn radio sim` on a pseudo-terminal) is a [`ModemOpener`].

use super::modem::Modem;
use super::port::Port;
use crate::domain::lora::{Received, Settings};
use crate::relay::radio::modem::{FrameModem, ModemFailure, ModemOpener};
use futures_util::future::BoxFuture;

fn failure(e: impl std::fmt::Display) -> ModemFailure {
    ModemFailure(e.to_string())
}

impl FrameModem for Modem {
    fn settings(&self) -> &Settings {
        Modem::settings(self)
    }

    fn mtu(&self) -> usize {
        Modem::mtu(self)
    }

    fn identity(&self) -> String {
        self.status().identity.clone()
    }

    fn noise_frames(&self) -> u64 {
        self.status().noise_frames
    }

    fn send<'a>(&'a mut self, frames: &'a [Vec<u8>]) -> BoxFuture<'a, Result<(), ModemFailure>> {
        Box::pin(async move { Modem::send(self, frames).await.map_err(failure) })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Received, ModemFailure>> {
        Box::pin(async move { Modem::recv(self).await.map_err(failure) })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Modem::close(*self))
    }
}

/// A modem on a serial device, opened with `settings`.
pub struct Serial {
    pub path: String,
    pub settings: Settings,
}

impl ModemOpener for Serial {
    fn name(&self) -> String {
        self.path.clone()
    }

    fn open(&self) -> BoxFuture<'_, Result<Box<dyn FrameModem>, ModemFailure>> {
        Box::pin(async move {
            let port = Port::open_serial(&self.path).map_err(failure)?;
            let modem = Modem::open(port, &self.settings).await.map_err(failure)?;
            Ok(Box::new(modem) as Box<dyn FrameModem>)
        })
    }
}
