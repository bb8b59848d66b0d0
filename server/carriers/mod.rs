//! Carriers that move opaque bundles and frames between nodes and report
//! what they can do (MTU, bit rate, online). Each implements a trait the
//! relay defines (`relay::carrier` for bundles, `relay::radio::modem` for
//! modems); they know nothing of the store: routing, retries and custody
//! live in [`crate::relay`]. [`Local`] is what a hub hands its relay.

pub mod folder;
pub mod lora;
pub mod smtp_out;
pub mod spool;
pub mod tcp;

use crate::relay::carrier::{ByteStream, CarrierError, Carriers, Folder, MailOut, Spool};
use futures_util::future::BoxFuture;
use std::path::Path;

/// The bundle carriers of this machine: its directories, Debian's NNCP
/// and Filespooler.
pub struct Local;

impl Carriers for Local {
    fn dial<'a>(
        &'a self,
        addr: &'a str,
        timeout: std::time::Duration,
    ) -> BoxFuture<'a, Result<Box<dyn ByteStream>, CarrierError>> {
        tcp::dial(addr, timeout)
    }

    fn folder(&self, dir: &Path) -> Box<dyn Folder> {
        Box::new(folder::Dir(dir.to_path_buf()))
    }

    fn nncp(&self, node: &str, cfg: Option<&Path>) -> Box<dyn Spool> {
        Box::new(spool::Nncp {
            node: node.to_string(),
            cfg: cfg.map(Path::to_path_buf),
        })
    }

    fn fspl(&self, queue: &Path, seqfile: &Path) -> Box<dyn Spool> {
        Box::new(spool::Fspl {
            queue: queue.to_path_buf(),
            seqfile: seqfile.to_path_buf(),
        })
    }

    fn smtp(
        &self,
        gateway: &crate::config::GatewayConfig,
        helo: &str,
    ) -> Result<Box<dyn MailOut>, String> {
        Ok(Box::new(smtp_out::Gateway::new(gateway, helo)?))
    }
}
