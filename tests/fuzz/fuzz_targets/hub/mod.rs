//! One small hub shared by the session targets: a real SQLite store in a
//! temporary directory, the hub's TLS context, two accounts whose Argon2
//! hashes use tiny parameters (so a login costs microseconds, not the
//! production tens of milliseconds), and a runtime. Each input is one
//! connection: its bytes are what the client sends, then end of stream.

use argon2::password_hash::PasswordHasher;
use cairn::domain::{Address, Domain, PasswordHash};
use cairn::imap::ImapContext;
use cairn::mail::transaction::{MailRules, RulesConfig};
use cairn::smtp::{Mode, SmtpContext};
use cairn::store::Store;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The accounts the seeds log in as, with this password.
pub const PASSWORD: &str = "fuzz-password-1";
const ACCOUNTS: [&str; 2] = ["fuzz@[127.0.0.1]", "bob@[127.0.0.1]"];
/// Messages are small here so the store does not grow without bound.
const MAX_MESSAGE: u64 = 256 << 10;

pub struct Hub {
    rt: tokio::runtime::Runtime,
    imap: Arc<ImapContext>,
    /// [encryption required, not required]
    smtp: [Arc<SmtpContext>; 2],
    peers: AtomicU32,
    _dir: tempfile::TempDir,
}

/// Inputs served by one hub before a fresh one replaces it: mail piles up
/// (APPEND, delivery), and a session over a mailbox of thousands is slow
/// for reasons that are not findings.
const INPUTS_PER_HUB: u32 = 500;

/// Run `f` with the current hub.
fn with_hub<T>(f: impl FnOnce(&Hub) -> T) -> T {
    static HUB: Mutex<Option<(Hub, u32)>> = Mutex::new(None);
    let mut slot = HUB.lock().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_none_or(|(_, n)| *n >= INPUTS_PER_HUB) {
        if let Some((old, _)) = slot.take() {
            old.retire();
        }
        *slot = Some((make(), 0));
    }
    let (hub, n) = slot.as_mut().expect("just made");
    *n += 1;
    f(hub)
}

/// One IMAP connection; `tls` says whether it is already encrypted
/// (LOGIN allowed) or plain (STARTTLS offered). Returns what the server said.
pub fn imap(tls: bool, input: &[u8]) -> Vec<u8> {
    with_hub(|h| h.imap(tls, input))
}

/// One SMTP connection in `mode`, with or without the encryption rule.
pub fn smtp(mode: Mode, require_encryption: bool, input: &[u8]) -> Vec<u8> {
    with_hub(|h| h.smtp(mode, require_encryption, input))
}

fn make() -> Hub {
    // In memory where there is /dev/shm: fsync costs nothing there, and
    // fuzzing is about the code, not the disk.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let domains = vec![Domain::parse("[127.0.0.1]").unwrap()];
    let store = rt.block_on(Store::open(dir.path())).expect("store opens");
    let cheap = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8, 1, 1, None).unwrap(),
    );
    for a in ACCOUNTS {
        let phc = cheap
            .hash_password(PASSWORD.as_bytes())
            .unwrap()
            .to_string();
        rt.block_on(
            store.account_insert(&Address::parse(a).unwrap(), &PasswordHash::from_stored(phc)),
        )
        .expect("account");
    }
    let (cert, _) =
        cairn::tls::ensure(&dir.path().join("tls"), &["127.0.0.1".to_string()]).unwrap();
    let tls = cairn::tls::server_config(&cert).unwrap();
    let rules = |require_encryption| {
        Arc::new(MailRules::new(
            store.clone(),
            RulesConfig {
                domains: domains.clone(),
                require_encryption,
                max_message_size: MAX_MESSAGE,
                max_recipients: 50,
                mailbox_quota: 1 << 30,
                send_per_minute: u32::MAX,
                send_burst: u32::MAX,
                create_on_login: true,
                // The fuzzer's disk is whatever it runs on.
                min_free_disk: 0,
                inbound: None,
            },
        ))
    };
    let smtp = |require_encryption| {
        Arc::new(SmtpContext {
            rules: rules(require_encryption),
            hostname: "fuzz.example".into(),
            tls: tls.clone(),
            allow_plaintext_auth: false,
            max_message_size: MAX_MESSAGE,
        })
    };
    Hub {
        imap: Arc::new(ImapContext {
            rules: rules(true),
            tls: tls.clone(),
            allow_plaintext_auth: false,
            max_message_size: MAX_MESSAGE,
            literal_budget: cairn::imap::literals::Budget::for_message_size(MAX_MESSAGE),
            quota: 64 << 20,
            comment: Some("fuzz".into()),
            admin: None,
        }),
        smtp: [smtp(true), smtp(false)],
        rt,
        peers: AtomicU32::new(1),
        _dir: dir,
    }
}

impl Hub {
    /// Close the store inside its runtime, then remove the directory.
    fn retire(self) {
        let Hub {
            rt,
            imap,
            smtp,
            _dir,
            ..
        } = self;
        rt.block_on(async move {
            let store = imap.rules.store.clone();
            drop((imap, smtp));
            store.close().await;
        });
        drop(rt);
        drop(_dir);
    }

    /// A fresh peer address per connection, so the per-IP limits on failed
    /// logins and account creation never turn every later input away.
    fn peer(&self) -> SocketAddr {
        let n = self.peers.fetch_add(1, Ordering::Relaxed);
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff))),
            40000,
        )
    }

    fn imap(&self, tls: bool, input: &[u8]) -> Vec<u8> {
        let (ctx, peer) = (self.imap.clone(), self.peer());
        self.rt.block_on(converse(input, move |server| async move {
            let _ = cairn::imap::connection::run(server, peer, ctx, tls, CancellationToken::new())
                .await;
        }))
    }

    fn smtp(&self, mode: Mode, require_encryption: bool, input: &[u8]) -> Vec<u8> {
        let ctx = self.smtp[usize::from(!require_encryption)].clone();
        let peer = self.peer();
        self.rt.block_on(converse(input, move |server| async move {
            let _ =
                cairn::smtp::session::run(server, peer, ctx, mode, CancellationToken::new()).await;
        }))
    }
}

/// Send `input`, close, and collect every byte the server wrote until it
/// closed too.
async fn converse<F, Fut>(input: &[u8], serve: F) -> Vec<u8>
where
    F: FnOnce(tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (client, server) = tokio::io::duplex(64 << 10);
    let session = tokio::spawn(serve(server));
    let (mut rd, mut wr) = tokio::io::split(client);
    let write = async {
        let _ = wr.write_all(input).await;
        let _ = wr.shutdown().await;
    };
    let mut out = Vec::new();
    let read = rd.read_to_end(&mut out);
    let _ = tokio::join!(write, read);
    session.await.expect("the session must not panic");
    out
}
