//! Who may open one more connection to a listener: at most so many at
//! once in all, and at most so many from one client address, so one
//! phone (or one script on the Wi-Fi) cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener is full.
    Full,
    /// This address has its share already.
    TooManyFromAddress,
}

/// The connection caps of one listener.
#[derive(Clone, Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, u32>>>,
    max_per_address: u32,
}

/// A connection let in; its slots are given back when it is dropped.
#[derive(Debug)]
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    ip: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Admission {
    pub fn new(max_connections: usize, max_per_address: u32) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(max_connections)),
            per_address: Arc::default(),
            max_per_address: max_per_address.max(1),
        }
    }

    /// Let one more connection from `ip` in, or say why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut table = self.per_address.lock().expect("admission table");
        if table.get(&ip).is_some_and(|n| *n >= self.max_per_address) {
            return Err(Refusal::TooManyFromAddress);
        }
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        *table.entry(ip).or_insert(0) += 1;
        Ok(Admitted {
            _slot: slot,
            ip,
            per_address: self.per_address.clone(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self.per_address.lock().expect("admission table");
        if let Some(n) = table.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_all_and_gives_back() {
        let a = Admission::new(3, 2);
        let one: IpAddr = "10.42.0.10".parse().unwrap();
        let two: IpAddr = "10.42.0.11".parse().unwrap();
        let first = a.admit(one).unwrap();
        let _second = a.admit(one).unwrap();
        assert_eq!(a.admit(one).unwrap_err(), Refusal::TooManyFromAddress);
        let _third = a.admit(two).unwrap();
        assert_eq!(a.admit(two).unwrap_err(), Refusal::Full);
        drop(first);
        let _again = a.admit(one).unwrap();
        drop(_again);
        drop(_second);
        assert!(
            !a.per_address.lock().unwrap().contains_key(&one),
            "an address with no connection leaves no entry"
        );
    }
}
