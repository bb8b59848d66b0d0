//! The rules of a mail transaction (RFC 5321 §3.3), whatever protocol
//! carries it: who may send as whom, where each recipient goes, which
//! content is accepted, and the durable hand-off to the store.
//!
//! Front ends turn [`MailError`] into their own replies.

use super::accounts::Accounts;
use super::inbound::{self, Checker, Remote};
use super::intake::{Intake, IntakeError, Received, fields};
use super::policy::{self, Direction, NotEncrypted};
use super::ratelimit::{Attempts, RateLimiter};
use super::rules::{self, Place, Routes, Source};
use crate::domain::{AccountId, Address, AddressError, Credential, Domain, Password};
use crate::store::{self, Delivered, Delivery, OutboundEnvelope, Store};
use std::net::IpAddr;
use std::time::Duration;

/// Failed logins an address may make in a row before it must wait.
pub const LOGIN_FAILURE_BURST: u32 = 10;
/// Failed logins per minute allowed after the burst.
pub const LOGIN_FAILURES_PER_MINUTE: u32 = 6;
/// Accounts one address may create by logging in, at once and then per
/// minute: enough for a family at the camp, not for a script.
pub const SELF_SERVICE_BURST: u32 = 10;
pub const SELF_SERVICE_PER_MINUTE: u32 = 1;
/// Chatmail's `password_min_length` for self-created accounts.
pub const SELF_SERVICE_MIN_PASSWORD: usize = 9;
/// Longest local part a self-created account may have.
pub const MAX_SELF_SERVICE_LOCAL: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("you are logged in as {login}; send as that address (MAIL FROM was {mail_from})")]
    SenderMismatch { login: String, mail_from: String },
    #[error("the From: header must be your address {login} (it was {from})")]
    FromMismatch { login: String, from: String },
    #[error("too much mail from {sender}: try again in {} s", wait.as_secs().max(1))]
    RateLimited { sender: String, wait: Duration },
    #[error("too many failed logins from {ip}: try again in {} s", wait.as_secs().max(1))]
    LoginsBlocked { ip: IpAddr, wait: Duration },
    #[error("`{input}` is not a valid address: {source}")]
    BadAddress { input: String, source: AddressError },
    #[error("no such user here: {0}")]
    NoSuchUser(String),
    #[error("{0} is not a domain this hub serves: relaying is not allowed")]
    RelayDenied(String),
    #[error("<{0}> is an address of this hub: log in on the submission port to send as it")]
    HostedSenderWithoutLogin(String),
    #[error("the mailbox of {0} is full: try again later")]
    MailboxFull(String),
    #[error("over quota: delete some mail first")]
    OverQuota,
    #[error("the hub's storage is nearly full ({free} MiB free, {reserve} MiB kept free): try again later", free = free >> 20, reserve = reserve >> 20)]
    StorageLow { free: u64, reserve: u64 },
    #[error("too many recipients: at most {0} per message")]
    TooManyRecipients(usize),
    #[error("{0}")]
    NotEncrypted(#[from] NotEncrypted),
    #[error("{0}")]
    Intake(IntakeError),
    #[error("{0}")]
    Refused(inbound::Refused),
    #[error("temporary problem storing the message: {0}")]
    Store(#[from] store::Error),
    #[error("temporary problem: {0}")]
    Internal(String),
}

impl From<IntakeError> for MailError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Store(s) => MailError::Store(s),
            other => MailError::Intake(other),
        }
    }
}

pub type Result<T, E = MailError> = std::result::Result<T, E>;

/// Hub-wide mail rules and the state they share across sessions.
pub struct MailRules {
    pub store: Store,
    pub accounts: Accounts,
    pub domains: Vec<Domain>,
    pub require_encryption: bool,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Mail an account may hold unless the admin gave it its own quota.
    pub mailbox_quota: u64,
    send_limit: RateLimiter<AccountId>,
    login_failures: Attempts<IpAddr>,
    creations: RateLimiter<IpAddr>,
    create_on_login: bool,
    min_free_disk: u64,
    /// SPF, DKIM and DMARC for Internet mail on a gateway's MX port.
    inbound: Option<Checker>,
}

/// Settings of [`MailRules`], from the configuration.
pub struct RulesConfig {
    pub domains: Vec<Domain>,
    pub require_encryption: bool,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub mailbox_quota: u64,
    pub send_per_minute: u32,
    pub send_burst: u32,
    pub create_on_login: bool,
    /// Free disk space kept: mail that would leave less is refused for now.
    pub min_free_disk: u64,
    /// The checks of Internet mail, used while this hub is a gateway;
    /// `None`: no DNS to ask (the hub's start says so).
    pub inbound: Option<Checker>,
}

/// Who is sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A logged-in user of this hub (submission ports), with the
    /// credential the session re-checks when accounts change.
    User {
        credential: Credential,
        address: Address,
    },
    /// Another mail server or peer (MX port, no login).
    Peer(Remote),
}

impl Origin {
    /// The source as the relay rules see it: the MX port's peers are
    /// strangers (no login, no card).
    pub fn source(&self) -> Source<'_> {
        match self {
            Origin::User { address, .. } => Source::Login(address),
            Origin::Peer(_) => Source::Stranger,
        }
    }
}

/// A transaction between MAIL FROM and the end of DATA.
#[derive(Debug)]
pub struct Transaction {
    origin: Origin,
    /// Canonical envelope sender; empty for `<>`.
    mail_from: String,
    local: Vec<AccountId>,
    remote: Vec<String>,
    /// Every recipient, canonical, for rules about the whole envelope.
    all_rcpts: Vec<String>,
    rcpt_count: usize,
}

impl Transaction {
    pub fn recipients(&self) -> usize {
        self.rcpt_count
    }
}

impl MailRules {
    pub fn new(store: Store, config: RulesConfig) -> Self {
        MailRules {
            accounts: Accounts::new(store.clone(), config.domains.clone()),
            store,
            domains: config.domains,
            require_encryption: config.require_encryption,
            max_message_size: config.max_message_size,
            max_recipients: config.max_recipients,
            mailbox_quota: config.mailbox_quota,
            send_limit: RateLimiter::new(config.send_per_minute, config.send_burst),
            login_failures: Attempts::new(LOGIN_FAILURES_PER_MINUTE, LOGIN_FAILURE_BURST),
            creations: RateLimiter::new(SELF_SERVICE_PER_MINUTE, SELF_SERVICE_BURST),
            create_on_login: config.create_on_login,
            min_free_disk: config.min_free_disk,
            inbound: config.inbound,
        }
    }

    /// Whether `size` more bytes leave the disk its reserve
    /// (`limits.min_free_disk`).
    pub fn room_for(&self, size: u64) -> Result<()> {
        let reserve = self.min_free_disk;
        match self.store.short_of_disk(reserve, size) {
            Some(free) => {
                tracing::warn!(free, reserve, "mail refused: the disk is nearly full");
                Err(MailError::StorageLow { free, reserve })
            }
            None => Ok(()),
        }
    }

    /// Check a login. `Ok(None)` is a wrong user or password (logged at
    /// WARN with the peer's IP); too many failures from one IP block it.
    /// Each attempt is charged before its password is hashed and refunded
    /// when it succeeds (see [`Attempts`]), so parallel attempts cannot
    /// all slip under the limit while their hashes run.
    pub async fn login(&self, ip: IpAddr, user: &str, password: &str) -> Result<Option<Origin>> {
        let attempt = self
            .login_failures
            .begin(&ip)
            .await
            .map_err(|wait| MailError::LoginsBlocked { ip, wait })?;
        let found = match Password::presented(password) {
            Ok(p) => self
                .accounts
                .verify(user, &p)
                .await
                .map_err(|e| MailError::Internal(e.to_string())),
            Err(_) => Ok(None),
        };
        let found = match found {
            Ok(None) if self.create_on_login => {
                self.create_on_first_login(ip, user, password).await
            }
            other => other,
        };
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                // Not the client's fault (or already counted as creation).
                attempt.succeeded();
                return Err(e);
            }
        };
        match (found, Address::parse(user)) {
            (Some(credential), Ok(address)) => {
                attempt.succeeded();
                Ok(Some(Origin::User {
                    credential,
                    address,
                }))
            }
            _ => {
                tracing::warn!(target: "cairn::auth", %ip, user = %user.chars().take(100).collect::<String>(), "login failed");
                Ok(None)
            }
        }
    }

    /// Bytes an account may still receive: its own quota if the admin
    /// set one, else the hub's, less what it holds.
    pub async fn quota_left(&self, account: AccountId) -> Result<u64> {
        let quota = match self.store.account_quota(account).await? {
            Some(q) => u64::try_from(q).unwrap_or(0),
            None => self.mailbox_quota,
        };
        let used = u64::try_from(self.store.account_usage(account).await?).unwrap_or(0);
        Ok(quota.saturating_sub(used))
    }

    /// Does a session's login still hold? False once its account was
    /// removed or its password changed (sessions then end).
    pub async fn still_valid(&self, credential: Credential) -> Result<bool> {
        Ok(self.store.credential_current(credential).await?)
    }

    /// Chatmail's self-service: the first login with an unused address of a
    /// hosted domain and a long enough password creates the account.
    /// Phones configure IMAP and SMTP at once, so losing the race to the
    /// other protocol's login is fine: the password is then checked.
    async fn create_on_first_login(
        &self,
        ip: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<Option<Credential>> {
        let Ok(address) = self.accounts.hosted_address(user) else {
            return Ok(None);
        };
        let local_ok = address.local().len() <= MAX_SELF_SERVICE_LOCAL
            && address.local().bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !local_ok || password.chars().count() < SELF_SERVICE_MIN_PASSWORD {
            return Ok(None);
        }
        let Ok(pw) = Password::chosen(password) else {
            return Ok(None);
        };
        if self.store.account_find(&address).await?.is_some() {
            // It exists: either the password was wrong, or the other
            // protocol's login created it a moment after ours looked.
            return self
                .accounts
                .verify(user, &pw)
                .await
                .map_err(|e| MailError::Internal(e.to_string()));
        }
        if let Err(wait) = self.creations.take(&ip) {
            tracing::warn!(target: "cairn::auth", %ip, "self-service account creation rate-limited");
            return Err(MailError::LoginsBlocked { ip, wait });
        }
        match self
            .accounts
            .create(&address.to_string(), Some(pw.clone()))
            .await
        {
            Ok(created) => {
                tracing::info!(target: "cairn::auth", %ip, address = %created.address, "account created on first login");
                Ok(Some(Credential {
                    account: created.id,
                    generation: crate::domain::Generation::FIRST,
                }))
            }
            Err(super::AccountError::Store(crate::store::Error::AccountExists(_))) => {
                // The other protocol's login made it: one phone, one creation.
                self.creations.refund(&ip);
                self.accounts
                    .verify(user, &pw)
                    .await
                    .map_err(|e| MailError::Internal(e.to_string()))
            }
            Err(e) => Err(MailError::Internal(e.to_string())),
        }
    }

    /// MAIL FROM: a user may only send as themselves; a peer may send as
    /// anyone but this hub's users, including the null reverse-path of a
    /// bounce ([`rules::sender`]).
    pub fn begin(&self, origin: Origin, mail_from: &str) -> Result<Transaction> {
        let given = match &origin {
            Origin::Peer(_) if !mail_from.is_empty() => Address::parse(mail_from)
                .map_err(|source| MailError::BadAddress {
                    input: mail_from.to_string(),
                    source,
                })?
                .to_string(),
            _ => mail_from.to_string(),
        };
        // RFC 5321 §4.5.3.1.10: the answer to MAIL when storage runs low.
        self.room_for(0)?;
        rules::sender(origin.source(), &given, &self.domains, &Routes::default()).map_err(|r| {
            match r {
                rules::Refusal::NotYourAddress { login, given } => MailError::SenderMismatch {
                    login,
                    mail_from: given,
                },
                rules::Refusal::HostedSenderWithoutLogin(s) => {
                    MailError::HostedSenderWithoutLogin(s)
                }
                other => MailError::Internal(other.to_string()),
            }
        })?;
        if let Origin::User {
            credential,
            address,
        } = &origin
            && let Err(wait) = self.send_limit.take(&credential.account)
        {
            return Err(MailError::RateLimited {
                sender: address.to_string(),
                wait,
            });
        }
        // A user's own address as the account has it; a peer's as given.
        let mail_from = match &origin {
            Origin::User { address, .. } => address.to_string(),
            Origin::Peer(_) => given,
        };
        Ok(Transaction {
            origin,
            mail_from,
            local: Vec::new(),
            remote: Vec::new(),
            all_rcpts: Vec::new(),
            rcpt_count: 0,
        })
    }

    /// RCPT TO: a local account, or (for users) a remote address to queue.
    pub async fn add_recipient(&self, tx: &mut Transaction, rcpt: &str) -> Result<()> {
        if tx.rcpt_count >= self.max_recipients {
            return Err(MailError::TooManyRecipients(self.max_recipients));
        }
        // The syntax first, for the parser's own words on what is wrong.
        Address::parse(rcpt).map_err(|source| MailError::BadAddress {
            input: rcpt.to_string(),
            source,
        })?;
        // Routes matter only to strangers (the MX port is no open relay).
        let routes = match tx.origin {
            Origin::Peer(_) => Routes::new(
                self.store
                    .routes()
                    .await?
                    .into_iter()
                    .map(|(domain, peer, _)| (domain, peer)),
            ),
            Origin::User { .. } => Routes::default(),
        };
        let address = match rules::recipient(tx.origin.source(), rcpt, &self.domains, &routes) {
            Ok(Place::Local(address)) => {
                let Some(row) = self.store.account_find(&address).await? else {
                    return Err(MailError::NoSuchUser(address.to_string()));
                };
                if self.quota_left(row.id()).await? == 0 {
                    return Err(MailError::MailboxFull(address.to_string()));
                }
                if !tx.local.contains(&row.id()) {
                    tx.local.push(row.id());
                }
                address
            }
            Ok(Place::Onward(address)) => {
                let a = address.to_string();
                if !tx.remote.contains(&a) {
                    tx.remote.push(a);
                }
                address
            }
            Err(rules::Refusal::RelayDenied(domain)) => return Err(MailError::RelayDenied(domain)),
            Err(other) => return Err(MailError::Internal(other.to_string())),
        };
        tx.rcpt_count += 1;
        tx.all_rcpts.push(address.to_string());
        Ok(())
    }

    /// Where the body of this transaction goes while it arrives.
    pub fn intake(&self, tx: &Transaction) -> Intake {
        let strip = matches!(tx.origin, Origin::User { .. });
        Intake::new(self.store.spool(), strip, self.max_message_size)
    }

    /// End of DATA: check the content, make it durable, deliver. When this
    /// returns `Ok`, the message is on disk in every INBOX and the outbox.
    pub async fn accept(&self, tx: Transaction, received: Received) -> Result<Delivered> {
        if let Origin::User { address, .. } = &tx.origin {
            check_from_header(&received.header, address)?;
        }
        let received = match (&tx.origin, &self.inbound) {
            (Origin::Peer(remote), Some(checker)) if self.store.is_gateway().await? => checker
                .check(remote, &tx.mail_from, received, self.store.spool())
                .await
                .map_err(MailError::Refused)?,
            _ => received,
        };
        let spool = if self.require_encryption {
            let direction = match tx.origin {
                Origin::User { .. } => Direction::Outgoing,
                Origin::Peer(_) => Direction::Incoming,
            };
            let Received { spool, header } = received;
            let (mail_from, rcpts) = (tx.mail_from.clone(), tx.all_rcpts.clone());
            let (spool, verdict) =
                policy::check_spooled(direction, mail_from, rcpts, header, spool)
                    .await
                    .map_err(|e| MailError::Internal(e.to_string()))?;
            verdict??;
            spool
        } else {
            received.spool
        };
        // From the blob file to the rows that use it, garbage collection waits.
        let _guard = self.store.blob_guard().await;
        let blob = spool.commit().await?;
        let outbound = (!tx.remote.is_empty()).then(|| OutboundEnvelope {
            mail_from: tx.mail_from.clone(),
            rcpts: tx.remote.clone(),
        });
        let delivered = self
            .store
            .deliver(Delivery {
                blob: &blob,
                local: &tx.local,
                outbound: outbound.as_ref(),
            })
            .await?;
        Ok(delivered)
    }
}

impl MailRules {
    /// IMAP APPEND: a user puts a message into one of their own mailboxes
    /// (a draft, a sent copy). No sender or recipient rule applies — it
    /// goes nowhere else — but the quota does, and the same durable
    /// hand-off: spooled, committed as a blob, then one store transaction
    /// that publishes the change. Returns the new message's UID.
    pub async fn append(
        &self,
        account: AccountId,
        mailbox: crate::domain::MailboxId,
        bytes: &[u8],
        flags: &[String],
        date: i64,
    ) -> Result<crate::domain::Uid> {
        if bytes.len() as u64 > self.quota_left(account).await? {
            return Err(MailError::OverQuota);
        }
        self.room_for(bytes.len() as u64)?;
        let _guard = self.store.blob_guard().await;
        let mut spool = self.store.spool();
        spool.write(bytes)?;
        let blob = spool.commit().await?;
        Ok(self.store.append(mailbox, &blob, flags, date).await?)
    }
}

/// RFC 5322 §3.6.2: exactly one From: mailbox, and it must be the login.
fn check_from_header(header: &[u8], login: &Address) -> Result<()> {
    let mismatch = |from: String| MailError::FromMismatch {
        login: login.to_string(),
        from,
    };
    let froms: Vec<String> = fields(header)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("From"))
        .map(|(_, v)| v)
        .collect();
    if froms.len() != 1 {
        return Err(mismatch(format!("{} From: fields", froms.len())));
    }
    let parsed = mail_parser::MessageParser::new().parse_headers(header);
    let addrs: Vec<String> = parsed
        .as_ref()
        .and_then(|m| m.from())
        .map(|a| {
            a.clone()
                .into_list()
                .iter()
                .filter_map(|x| x.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match addrs.as_slice() {
        [one] if Address::parse(one).as_ref() == Ok(login) => Ok(()),
        _ => Err(mismatch(froms[0].clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_header_rules() {
        let login = Address::parse("alice@[127.0.0.1]").unwrap();
        for ok in [
            "From: <alice@[127.0.0.1]>\r\n\r\n",
            "From: Alice <ALICE@[127.0.0.1]>\r\n\r\n",
            "From: alice@[127.0.0.1]\r\n\r\n",
        ] {
            check_from_header(ok.as_bytes(), &login).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "Subject: none\r\n\r\n",
            "From: <bob@[127.0.0.1]>\r\n\r\n",
            "From: <alice@[127.0.0.1]>, <bob@[127.0.0.1]>\r\n\r\n",
            "From: <alice@[127.0.0.1]>\r\nFrom: <bob@x>\r\n\r\n",
            "From: \"alice@[127.0.0.1]\" <eve@evil.example>\r\n\r\n",
        ] {
            assert!(check_from_header(bad.as_bytes(), &login).is_err(), "{bad}");
        }
    }
}
