//! The live link's carrier: TCP byte streams to the addresses on a peer's
//! card (names are resolved, each address tried in turn). The relay runs
//! its Noise channel over them (`relay/link.rs`); the listening side is
//! wired in app.rs like every other port.

use crate::relay::carrier::{ByteStream, CarrierError};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Connects to `addr` ("host:port", "[v6]:port"): every address it
/// resolves to is tried, each for at most `timeout`. The error names the
/// last address tried and why it failed.
pub fn dial(
    addr: &str,
    timeout: Duration,
) -> BoxFuture<'_, Result<Box<dyn ByteStream>, CarrierError>> {
    Box::pin(async move {
        let fail = |path: String, source: std::io::Error| CarrierError { path, source };
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| fail(addr.to_string(), e))?
            .collect();
        let mut last = fail(
            addr.to_string(),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        );
        for sa in resolved {
            match tokio::time::timeout(timeout, TcpStream::connect(sa)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(Box::new(s) as Box<dyn ByteStream>);
                }
                Ok(Err(e)) => last = fail(sa.to_string(), e),
                Err(_) => {
                    last = fail(
                        sa.to_string(),
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no answer within {timeout:?}"),
                        ),
                    )
                }
            }
        }
        Err(last)
    })
}
