//! A LoRa radio simulator: RNode and RYLR998 emulators joined by one
//! simulated channel ([`ether`]), reachable either in memory (tests in
//! paused time) or through pseudo-terminals that a hub opens like a USB
//! modem (`cairn radio sim`).
//!
//! Every [`Sim::open`] is a fresh power-up of the modem (ESP32 boards
//! reboot when their port opens); [`Sim::unplug`] cuts the cable, and the
//! host sees its port close.

pub mod ether;
pub mod rnode;
pub mod rylr;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use self::ether::{Conditions, Ether};
use super::modem::Model;
use super::port::Port;

struct Radio {
    name: String,
    model: Model,
    node: usize,
    plugged: bool,
    task: Option<JoinHandle<()>>,
    /// The pseudo-terminal's own end, kept open so the master never sees
    /// EIO while the hub has the port closed.
    pty_slave: Option<serialport::TTYPort>,
    link: Option<PathBuf>,
}

fn find<'a>(radios: &'a mut [Radio], name: &str) -> std::io::Result<&'a mut Radio> {
    radios.iter_mut().find(|r| r.name == name).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no simulated radio `{name}`"),
        )
    })
}

/// The simulator: radios on one channel.
pub struct Sim {
    ether: Ether,
    radios: Mutex<Vec<Radio>>,
    rnode: rnode::Options,
    seed: Mutex<u64>,
}

impl Sim {
    pub fn new(seed: u64, conditions: Conditions) -> Arc<Sim> {
        Sim::with_options(seed, conditions, rnode::Options::default())
    }

    pub fn with_options(seed: u64, conditions: Conditions, rnode: rnode::Options) -> Arc<Sim> {
        Arc::new(Sim {
            ether: Ether::new(seed, conditions),
            radios: Mutex::new(Vec::new()),
            rnode,
            seed: Mutex::new(seed ^ 0x5EED),
        })
    }

    pub fn ether(&self) -> &Ether {
        &self.ether
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Radio>> {
        self.radios.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a radio, plugged in.
    pub fn add(&self, name: &str, model: Model) {
        let node = self.ether.attach(name);
        self.lock().push(Radio {
            name: name.to_string(),
            model,
            node,
            plugged: true,
            task: None,
            pty_slave: None,
            link: None,
        });
    }

    fn spawn(&self, model: Model, node: usize, port: Port) -> JoinHandle<()> {
        let ether = self.ether.clone();
        let seed = {
            let mut s = self.seed.lock().unwrap_or_else(|p| p.into_inner());
            *s = s.wrapping_add(1);
            *s
        };
        let options = self.rnode.clone();
        match model {
            Model::Rnode => tokio::spawn(rnode::run(ether, node, port, options, seed)),
            Model::Rylr => tokio::spawn(rylr::run(ether, node, port)),
        }
    }

    /// Powers the modem up on a fresh in-memory port and returns the
    /// host's end; fails while the radio is unplugged.
    pub fn open(&self, name: &str) -> std::io::Result<Port> {
        let mut radios = self.lock();
        let r = find(&mut radios, name)?;
        if !r.plugged {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("simulated radio `{name}` is unplugged"),
            ));
        }
        if let Some(t) = r.task.take() {
            t.abort();
            self.ether.silence(r.node);
        }
        let (host, modem) = Port::pair(name, &format!("{name} (modem)"));
        let (model, node) = (r.model, r.node);
        drop(radios);
        let task = self.spawn(model, node, modem);
        if let Some(r) = self.lock().iter_mut().find(|r| r.name == name) {
            r.task = Some(task);
        }
        Ok(host)
    }

    /// Serves a radio on a pseudo-terminal and points `link` at it, as a
    /// udev rule would for a USB modem.
    pub fn open_pty(&self, name: &str, link: &Path) -> std::io::Result<()> {
        // The slave end is kept open here (without a lock, so the hub can
        // open it exclusively as it would a USB modem).
        let (master, slave) = serialport::TTYPort::pair()
            .map_err(|e| std::io::Error::other(format!("cannot make a pseudo-terminal: {e}")))?;
        let path = serialport::SerialPort::name(&slave)
            .ok_or_else(|| std::io::Error::other("pseudo-terminal without a name"))?;
        let port = Port::from_tty(master, &format!("{name} (modem)"))?;
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&path, link)?;
        let (model, node) = {
            let mut radios = self.lock();
            let r = find(&mut radios, name)?;
            if let Some(t) = r.task.take() {
                t.abort();
                self.ether.silence(r.node);
            }
            r.plugged = true;
            r.pty_slave = Some(slave);
            r.link = Some(link.to_path_buf());
            (r.model, r.node)
        };
        let task = self.spawn(model, node, port);
        if let Some(r) = self.lock().iter_mut().find(|r| r.name == name) {
            r.task = Some(task);
        }
        Ok(())
    }

    /// Pulls the cable: the host's port closes, the modem forgets its
    /// settings, and opening fails until [`Sim::plug`].
    pub fn unplug(&self, name: &str) {
        let mut radios = self.lock();
        if let Some(r) = radios.iter_mut().find(|r| r.name == name) {
            r.plugged = false;
            if let Some(t) = r.task.take() {
                t.abort();
                self.ether.silence(r.node);
            }
            r.pty_slave = None;
            self.ether.tune(r.node, None);
            if let Some(link) = &r.link {
                let _ = std::fs::remove_file(link);
            }
        }
    }

    /// Plugs the cable back in (a pseudo-terminal radio gets a new
    /// terminal behind the same link path).
    pub fn plug(&self, name: &str) -> std::io::Result<()> {
        let link = {
            let mut radios = self.lock();
            let Some(r) = radios.iter_mut().find(|r| r.name == name) else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no simulated radio `{name}`"),
                ));
            };
            r.plugged = true;
            r.link.clone()
        };
        match link {
            Some(link) => self.open_pty(name, &link),
            None => Ok(()),
        }
    }
}
