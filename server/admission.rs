//! Who may open one more connection to a listener: at most so many at
//! once in all, and at most so many from one client address, so one
//! phone (or one script on the Wi-Fi) cannot take every slot. And the one
//! accept loop every listener runs ([`accept_loop`]).

use crate::tasks::Tasks;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Pause after a failed accept (e.g. out of file descriptors) before
/// trying again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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

/// How a listener turns a connection away: the protocol's words for
/// "full" and for "too many from your address" (empty: just close).
#[derive(Debug, Clone, Copy)]
pub struct Refusals {
    pub full: &'static [u8],
    pub too_many_from_address: &'static [u8],
}

impl Refusals {
    /// Close without a word (protocols that speak second).
    pub const SILENT: Refusals = Refusals {
        full: b"",
        too_many_from_address: b"",
    };
}

/// Accept connections on `listener` until `stop`. Each is let in by
/// `admission` (when given); `serve` makes the connection's session, which
/// runs in a task of `tracker` holding the connection's slot until it
/// ends. A connection turned away is told why in the protocol's words and
/// closed, in a task of `tracker` too. `what` names the listener in the
/// log.
pub async fn accept_loop<F, Fut>(
    what: &'static str,
    listener: TcpListener,
    admission: Option<Admission>,
    refusals: Refusals,
    stop: CancellationToken,
    tracker: Tasks,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let admitted = match admission.as_ref().map(|a| a.admit(peer.ip())) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(why)) => {
                let words = match why {
                    Refusal::Full => refusals.full,
                    Refusal::TooManyFromAddress => {
                        tracing::info!(%peer, "{what}: too many connections from this address");
                        refusals.too_many_from_address
                    }
                };
                tracker.spawn(async move {
                    let mut tcp = tcp;
                    if !words.is_empty() {
                        let _ = tcp.write_all(words).await;
                    }
                    let _ = tcp.shutdown().await;
                });
                continue;
            }
        };
        let session = serve(tcp, peer);
        tracker.spawn(async move {
            let _slot = admitted;
            session.await;
        });
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
