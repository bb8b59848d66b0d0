//! The serial devices a LoRa modem could be on, for the radio page's
//! picker: what is plugged in, and whether this process — the hub's
//! service, with its device policy and groups — can open it.

use std::path::{Path, PathBuf};

/// At most this many devices are listed (each is opened once).
const MAX_DEVICES: usize = 32;

/// What opening a device said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opens {
    /// It opened (and was closed at once).
    Yes,
    /// This hub's radio holds it now, so it was not opened again.
    InUse,
    /// It did not open: why, in words.
    No(String),
}

/// A serial device as the radio page offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialDevice {
    /// The name to configure: the `serial/by-id` link when there is one
    /// (it survives replugging and other adapters).
    pub path: String,
    /// The device node the link names ("/dev/ttyUSB0"); `path` itself
    /// when it is no link.
    pub device: String,
    pub opens: Opens,
}

/// The USB serial adapters under `dev` (the machine's `/dev`): the links in
/// `serial/by-id` first, then `ttyUSB*` and `ttyACM*` nodes no link names,
/// each opened once (read-write, no controlling terminal, not waiting for
/// a carrier) and closed again — except `in_use`, the port this hub's
/// radio has open. A device the service may not open shows here as "No"
/// with the reason, so what is listed as openable is what the radio can use.
pub fn serial_devices(dev: &Path, in_use: Option<&str>) -> Vec<SerialDevice> {
    let in_use = in_use
        .filter(|p| !p.is_empty())
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p)));
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    for link in sorted_entries(&dev.join("serial/by-id"), |_| true) {
        let target = std::fs::canonicalize(&link).unwrap_or_else(|_| link.clone());
        found.push((link, target));
    }
    let adapter = |name: &str| name.starts_with("ttyUSB") || name.starts_with("ttyACM");
    for node in sorted_entries(dev, adapter) {
        let target = std::fs::canonicalize(&node).unwrap_or_else(|_| node.clone());
        if !found.iter().any(|(_, t)| *t == target) {
            found.push((node, target));
        }
    }
    found.truncate(MAX_DEVICES);
    found
        .into_iter()
        .map(|(path, target)| {
            let opens = if in_use.as_ref().is_some_and(|u| *u == target || *u == path) {
                Opens::InUse
            } else {
                try_open(&path)
            };
            SerialDevice {
                path: path.display().to_string(),
                device: target.display().to_string(),
                opens,
            }
        })
        .collect()
}

/// The entries of `dir` whose names pass `keep`, sorted by name; none when
/// the folder is not there.
fn sorted_entries(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .take(MAX_DEVICES * 4)
        .collect();
    v.sort();
    v
}

fn try_open(path: &Path) -> Opens {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => {
            drop(fd);
            Opens::Yes
        }
        Err(e) if e == rustix::io::Errno::ACCESS || e == rustix::io::Errno::PERM => Opens::No(
            "the hub may not open it (permission denied: the hub's service opens only USB serial adapters, ttyUSB and ttyACM, as a member of the dialout group)".into(),
        ),
        Err(e) if e == rustix::io::Errno::BUSY => {
            Opens::No("another program holds it open".into())
        }
        Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NXIO => {
            Opens::No("it is gone (unplugged?)".into())
        }
        Err(e) => Opens::No(std::io::Error::from(e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder shaped like /dev: an adapter with a by-id link (a real
    /// terminal: a pseudo-terminal's end), one without, and a link left
    /// behind by an unplugged one.
    #[test]
    fn adapters_are_listed_by_id_first_and_opened_once() {
        let dev = tempfile::tempdir().unwrap();
        let (_master, slave) = serialport::TTYPort::pair().unwrap();
        let pty = serialport::SerialPort::name(&slave).unwrap();
        std::os::unix::fs::symlink(&pty, dev.path().join("ttyUSB0")).unwrap();
        std::fs::create_dir_all(dev.path().join("serial/by-id")).unwrap();
        std::os::unix::fs::symlink(
            "../../ttyUSB0",
            dev.path().join("serial/by-id/usb-FTDI_FT232R-if00-port0"),
        )
        .unwrap();
        std::os::unix::fs::symlink(&pty, dev.path().join("ttyACM3")).unwrap_or(());
        std::os::unix::fs::symlink("/nonexistent/ttyACM9", dev.path().join("ttyACM9")).unwrap();
        std::fs::write(dev.path().join("ttyS0"), b"").unwrap();

        let found = serial_devices(dev.path(), None);
        let paths: Vec<_> = found
            .iter()
            .map(|d| d.path.rsplit('/').next().unwrap())
            .collect();
        // ttyUSB0 and ttyACM3 name the same terminal as the by-id link.
        assert_eq!(
            paths,
            ["usb-FTDI_FT232R-if00-port0", "ttyACM9"],
            "{found:?}"
        );
        assert_eq!(found[0].device, pty);
        assert_eq!(found[0].opens, Opens::Yes);
        assert!(
            matches!(&found[1].opens, Opens::No(why) if why.contains("gone")),
            "{found:?}"
        );

        let by_id = found[0].path.clone();
        let held = serial_devices(dev.path(), Some(&by_id));
        assert_eq!(held[0].opens, Opens::InUse);
        let held = serial_devices(dev.path(), Some(&pty));
        assert_eq!(
            held[0].opens,
            Opens::InUse,
            "the node the link names is the same device"
        );
        assert!(serial_devices(&dev.path().join("nothing"), None).is_empty());
    }
}
