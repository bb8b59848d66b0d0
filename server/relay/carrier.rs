//! The kinds of carrier an uplink can use, as one enum: what each takes as
//! its target, whether it can read a deleted bundle as an acknowledgement,
//! whether it polls an idle peer. The store keeps the kind as its name.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CarrierKind {
    /// The live TCP link to the peer's card addresses (Noise).
    Link,
    /// A folder both hubs see (Syncthing, a share): bundles in and out.
    Folder,
    /// A folder on a removable stick: present only while mounted.
    Usb,
    /// NNCP packets to the peer's node.
    Nncp,
    /// The Internet's mail servers (the gateway's outbound SMTP).
    Smtp,
    /// The hub's LoRa radio.
    Lora,
}

impl CarrierKind {
    pub const ALL: [CarrierKind; 6] = [
        CarrierKind::Link,
        CarrierKind::Folder,
        CarrierKind::Usb,
        CarrierKind::Nncp,
        CarrierKind::Smtp,
        CarrierKind::Lora,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CarrierKind::Link => "link",
            CarrierKind::Folder => "folder",
            CarrierKind::Usb => "usb",
            CarrierKind::Nncp => "nncp",
            CarrierKind::Smtp => "smtp",
            CarrierKind::Lora => "lora",
        }
    }

    /// Bundles left in a folder: a deleted one can stand for its
    /// acknowledgement (the other side took it).
    pub fn is_folder(self) -> bool {
        matches!(self, CarrierKind::Folder | CarrierKind::Usb)
    }

    /// Whether an open uplink with nothing queued still syncs now and
    /// then to fetch what waits on the other side. Air time is scarce: a
    /// radio peer calls when it has something.
    pub fn polls(self) -> bool {
        self != CarrierKind::Lora
    }
}

impl fmt::Display for CarrierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A carrier name that is none of [`CarrierKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no carrier `{0}`: use one of link, folder, usb, nncp, smtp, lora")]
pub struct UnknownCarrier(pub String);

impl FromStr for CarrierKind {
    type Err = UnknownCarrier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CarrierKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownCarrier(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_exists() {
        for k in CarrierKind::ALL {
            assert_eq!(k.as_str().parse::<CarrierKind>(), Ok(k));
        }
        let e = "pigeon".parse::<CarrierKind>().unwrap_err().to_string();
        for k in CarrierKind::ALL {
            assert!(e.contains(k.as_str()), "{e}");
        }
    }
}
