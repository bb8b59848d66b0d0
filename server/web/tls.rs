//! HTTPS for axum: a listener whose TLS handshakes run in their own tasks,
//! so one slow or silent client never holds up the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Finished handshakes waiting for axum to pick them up.
const READY_QUEUE: usize = 64;

pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
        stop: CancellationToken,
    ) -> Self {
        let local = listener
            .local_addr()
            .expect("bound listener has an address");
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        // The pages have no connection cap of their own (axum's); the
        // handshakes run in tasks of their own, not tracked (the web
        // server's shutdown waits for its connections).
        tokio::spawn(crate::admission::accept_loop(
            "HTTPS",
            listener,
            None,
            crate::admission::Refusals::SILENT,
            stop,
            crate::tasks::Tasks::new(),
            move |tcp, peer| {
                let config = config.clone();
                let tx = tx.clone();
                async move {
                    if let Some(tls) =
                        crate::tls::handshake(&config, tcp, handshake_timeout, peer).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                }
            },
        ));
        TlsListener { local, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept loop ended (shutdown): wait for axum's own shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
