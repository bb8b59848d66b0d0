//! Classic peers: Exim or Postfix nodes that carry mail as batch SMTP
//! (RFC 2442) — through NNCP (`nncp-exec NODE rsmtp`), a pipe, or a folder.
//!
//! Import reads a batch and takes each message as the MX port would (the
//! same recipients, the same encryption rule), commits it on its own, and
//! records its content id, so a batch run again after a failure half-way —
//! what Exim's `-bS` gets wrong — delivers nothing twice. A recipient that
//! cannot be served gets a bounce; a batch cut short leaves its last
//! message for the complete batch to bring.
//!
//! Export writes the items routed to a classic peer as batch SMTP. The peer
//! takes custody (its MTA or NNCP spool queues them), so handed-over items
//! leave the outbox; no acknowledgement comes back.

use super::bsmtp::{self, Decoder, Envelope, Event};
use super::bundle::Item;
use super::{Exported, Relay, RelayError, Result, header_section, item_id};
use crate::domain::Address;
use crate::mail::bounce::Failure;
use crate::mail::intake::{Intake, IntakeError, Received};
use crate::mail::policy::{self, Direction};
use crate::mail::rules::{self, Place, Source};
use crate::store;
use crate::store::relay::{ImportApplied, ImportedItem, PeerRow};
use std::io::{Read, Write};

/// Bytes read from the input at a time.
const READ_CHUNK: usize = 64 << 10;
/// The NNCP exec handle classic nodes use for batch SMTP (Exim's
/// `nncp-exec NODE rsmtp`, the receiving side's `sendmail -bS`).
pub const NNCP_HANDLE: &str = "rsmtp";

/// What a batch import did.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// The classic peer it came from, if known.
    pub peer: Option<String>,
    /// Complete messages read.
    pub messages: usize,
    pub applied: ImportApplied,
    /// Messages or recipients that could not be taken, one line each.
    pub problems: Vec<String>,
    /// The batch ended inside a message: why, for the caller to report.
    pub truncated: Option<String>,
    /// Lines outside any transaction that are not batch SMTP (the input
    /// may not be batch SMTP at all): nobody could be told about them.
    pub stray: usize,
}

impl std::fmt::Display for BatchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.applied;
        write!(
            f,
            "batch{}: {} messages ({} delivered here, {} passed on, {} already had, {} refused, {} with bounces)",
            self.peer
                .as_deref()
                .map(|p| format!(" from {p}"))
                .unwrap_or_default(),
            self.messages,
            a.delivered,
            a.forwarded,
            a.duplicates,
            a.refused,
            a.bounced
        )
    }
}

/// What the reading thread hands over.
enum Reading {
    Message(Envelope, std::result::Result<Received, IntakeError>),
    Problem(bsmtp::Problem),
    Truncated(Option<Envelope>),
    Failed(std::io::Error),
}

fn failure(rcpt: &str, status: &str, diagnostic: impl Into<String>) -> Failure {
    Failure {
        recipient: rcpt.to_string(),
        status: status.into(),
        diagnostic: diagnostic.into(),
    }
}

/// Who hands this hub a batch (or one sendmail message), for the relay
/// rules.
#[derive(Debug, Clone)]
pub enum BatchFrom {
    /// A classic peer: named (`--peer`), or found by its NNCP node.
    Peer(PeerRow),
    /// An NNCP node that is no peer of this hub: a stranger, as on the
    /// MX port.
    UnknownNode(String),
    /// The hub's own command line, run by whoever can read its data.
    Local,
}

impl BatchFrom {
    pub fn peer(&self) -> Option<&PeerRow> {
        match self {
            BatchFrom::Peer(p) => Some(p),
            _ => None,
        }
    }
}

impl Relay {
    /// Who a batch comes from: the classic peer named (`--peer`), or the
    /// peer whose NNCP node is `nncp_sender` (NNCP sets `NNCP_SENDER` for
    /// exec handles), or an NNCP node no peer has, or — neither given —
    /// the hub's own command line.
    pub async fn classic_sender(
        &self,
        name: Option<&str>,
        nncp_sender: Option<&str>,
    ) -> Result<BatchFrom> {
        if let Some(name) = name {
            let p = self.peer(name).await?;
            if !p.is_classic() {
                return Err(RelayError::BadItem(format!(
                    "{name} is a cairn peer: its mail comes in bundles (`cairn bundle import`)"
                )));
            }
            return Ok(BatchFrom::Peer(p));
        }
        let Some(sender) = nncp_sender.filter(|s| !s.is_empty()) else {
            return Ok(BatchFrom::Local);
        };
        Ok(self
            .store
            .peer_list()
            .await?
            .into_iter()
            .find(|p| p.is_classic() && p.nncp_node.as_deref() == Some(sender))
            .map_or_else(
                || BatchFrom::UnknownNode(sender.to_string()),
                BatchFrom::Peer,
            ))
    }

    /// Import one batch from `input`, each message committed on its own.
    /// `Err` only for a temporary failure (the disk, the database): what
    /// was committed stays, and running the batch again delivers the rest.
    pub async fn import_bsmtp<R: Read + Send + 'static>(
        &self,
        mut input: R,
        from: BatchFrom,
    ) -> Result<BatchReport> {
        self.room()?;
        let peer = from.peer();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Reading>(1);
        let store = self.store.clone();
        let limit = self.config.max_message_size;
        let reader = tokio::task::spawn_blocking(move || {
            let mut d = Decoder::new();
            let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
            let mut used = 0;
            let mut eof = false;
            let mut current: Option<(Envelope, Intake)> = None;
            loop {
                let (n, ev) = d.next(&buf[used..], eof);
                used += n;
                let out = match ev {
                    Event::NeedMore => {
                        buf.drain(..used);
                        used = 0;
                        let start = buf.len();
                        buf.resize(start + READ_CHUNK, 0);
                        match input.read(&mut buf[start..]) {
                            Ok(got) => {
                                buf.truncate(start + got);
                                eof = got == 0;
                                None
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                                buf.truncate(start);
                                None
                            }
                            Err(e) => Some(Reading::Failed(e)),
                        }
                    }
                    Event::Nothing => None,
                    Event::Begin(env) => {
                        current = Some((env, Intake::new(store.spool(), false, limit)));
                        None
                    }
                    Event::Body(bytes) => {
                        let (_, intake) = current.as_mut().expect("body follows begin");
                        match intake.push(bytes) {
                            Ok(()) => None,
                            Err(IntakeError::Store(e)) => {
                                Some(Reading::Failed(std::io::Error::other(e.to_string())))
                            }
                            Err(_) => None,
                        }
                    }
                    Event::End => {
                        let (env, intake) = current.take().expect("end follows begin");
                        Some(Reading::Message(env, intake.finish()))
                    }
                    Event::Refused(p) => Some(Reading::Problem(p)),
                    Event::Finished => return,
                    Event::Truncated(env) => Some(Reading::Truncated(env)),
                };
                if let Some(out) = out {
                    let stop = matches!(out, Reading::Truncated(_) | Reading::Failed(_));
                    if tx.blocking_send(out).is_err() || stop {
                        return;
                    }
                }
            }
        });
        let mut report = BatchReport {
            peer: peer.map(|p| p.name.clone()),
            ..BatchReport::default()
        };
        let mut result = Ok(());
        while let Some(got) = rx.recv().await {
            match got {
                Reading::Message(env, received) => {
                    report.messages += 1;
                    if let Err(e) = self.take_message(&from, &env, received, &mut report).await {
                        result = Err(e);
                        break;
                    }
                }
                Reading::Problem(p) => {
                    report.stray += usize::from(p.spoilt.is_none());
                    let what = match &p.spoilt {
                        Some(env) => format!("the message from <{}>", env.mail_from),
                        None => "the command".into(),
                    };
                    report
                        .problems
                        .push(format!("line {}: {}; {what} was skipped", p.line, p.reason));
                    if let Some(env) = p.spoilt
                        && !env.rcpts.is_empty()
                        && let Err(e) = self.bounce_spoilt(&env, &p.reason, &mut report).await
                    {
                        result = Err(e);
                        break;
                    }
                }
                Reading::Truncated(env) => {
                    report.truncated = Some(match env {
                        Some(env) => format!(
                            "the batch ends inside the message from <{}> that starts on line {}: it was not delivered; run the complete batch again (what was delivered is not delivered twice)",
                            env.mail_from, env.line
                        ),
                        None => "the batch ends in the middle of a line: run the complete batch again (what was delivered is not delivered twice)".into(),
                    });
                }
                Reading::Failed(e) => {
                    result = Err(RelayError::Io {
                        path: "the batch".into(),
                        source: e,
                    });
                    break;
                }
            }
        }
        drop(rx);
        let _ = reader.await;
        result?;
        self.route_pending().await?;
        Ok(report)
    }

    /// Take one message handed over the way sendmail(1) is called — the
    /// envelope on the command line (`-f SENDER RCPT…`), or the sender in
    /// a leading mbox `From ` line, which Postfix's pipe(8) `F` flag writes
    /// (NNCP's Postfix integration: `nncp-exec NODE sendmail $recipient`).
    /// Otherwise exactly like one message of a batch.
    pub async fn import_message<R: Read + Send + 'static>(
        &self,
        input: R,
        mail_from: Option<String>,
        rcpts: Vec<String>,
        from: BatchFrom,
    ) -> Result<BatchReport> {
        self.room()?;
        let peer = from.peer();
        if rcpts.is_empty() {
            return Err(RelayError::Input(
                "name the recipients after the options, as for sendmail".into(),
            ));
        }
        if rcpts.len() > bsmtp::MAX_RECIPIENTS {
            return Err(RelayError::Input(format!(
                "more than {} recipients",
                bsmtp::MAX_RECIPIENTS
            )));
        }
        let spool = self.store.spool();
        let limit = self.config.max_message_size;
        let (from_line, received) = tokio::task::spawn_blocking(move || {
            let mut input = std::io::BufReader::with_capacity(READ_CHUNK, input);
            let mut intake = Intake::new(spool, false, limit);
            let mut first = Vec::new();
            std::io::BufRead::read_until(
                &mut (&mut input).take(bsmtp::MAX_COMMAND_LINE as u64),
                b'\n',
                &mut first,
            )?;
            // "From sender date": the envelope sender, not part of the message.
            let from_line = first.strip_prefix(b"From ").map(|rest| {
                let rest = String::from_utf8_lossy(rest);
                let sender = rest.split_whitespace().next().unwrap_or("");
                let sender = sender.trim_start_matches('<').trim_end_matches('>');
                if sender == "MAILER-DAEMON" {
                    String::new()
                } else {
                    sender.to_string()
                }
            });
            let push = |intake: &mut Intake, b: &[u8]| match intake.push(b) {
                Err(IntakeError::Store(e)) => Err(std::io::Error::other(e.to_string())),
                _ => Ok(()),
            };
            if from_line.is_none() {
                push(&mut intake, &first)?;
            }
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                push(&mut intake, &buf[..n])?;
            }
            Ok::<_, std::io::Error>((from_line, intake.finish()))
        })
        .await
        .map_err(|e| RelayError::BadItem(format!("reading task failed: {e}")))?
        .map_err(|source| RelayError::Io {
            path: "the message".into(),
            source,
        })?;
        let Some(mail_from) = mail_from.or(from_line) else {
            return Err(RelayError::Input(
                "no sender: give -f SENDER or start the message with a `From SENDER` line".into(),
            ));
        };
        let mail_from = match mail_from.as_str() {
            "<>" => String::new(),
            _ => mail_from,
        };
        let mut report = BatchReport {
            peer: peer.map(|p| p.name.clone()),
            messages: 1,
            ..BatchReport::default()
        };
        let env = Envelope {
            line: 1,
            mail_from,
            rcpts,
            bad_rcpts: Vec::new(),
        };
        self.take_message(&from, &env, received, &mut report)
            .await?;
        self.route_pending().await?;
        Ok(report)
    }

    /// A transaction spoilt by a bad command: its recipients are told.
    async fn bounce_spoilt(
        &self,
        env: &Envelope,
        reason: &str,
        report: &mut BatchReport,
    ) -> Result<()> {
        let failures: Vec<Failure> = env
            .rcpts
            .iter()
            .map(|r| {
                failure(
                    r,
                    "5.5.2",
                    format!("the batch SMTP was malformed: {reason}"),
                )
            })
            .collect();
        let what = format!("spoilt on line {}: {reason}", env.line);
        self.bounce_once(&env.mail_from, &env.rcpts, &what, &failures, report)
            .await
    }

    /// A bounce for a message that was not kept, sent once however often
    /// the batch is run: its id stands for (envelope, what went wrong).
    async fn bounce_once(
        &self,
        mail_from: &str,
        rcpts: &[String],
        what: &str,
        failures: &[Failure],
        report: &mut BatchReport,
    ) -> Result<()> {
        let what_hash = {
            let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            ctx.update(b"cairn-bsmtp-bounce\0");
            ctx.update(what.as_bytes());
            crate::domain::hex(ctx.finish().as_ref())
        };
        let id = item_id(mail_from, rcpts, &what_hash);
        let Some(bounce) = self.bounce_for(mail_from, failures, b"").await? else {
            return Ok(());
        };
        let applied = self
            .store
            .import_classic(
                None,
                &ImportedItem {
                    item_id: id,
                    place: Some(bounce),
                    bounce: None,
                },
            )
            .await?;
        if applied.duplicates == 0 {
            report.applied.bounced += 1;
        }
        Ok(())
    }

    /// Take one complete message: who may send it, where each recipient
    /// goes, the encryption rule, the content id, then one commit.
    async fn take_message(
        &self,
        from: &BatchFrom,
        env: &Envelope,
        received: std::result::Result<Received, IntakeError>,
        report: &mut BatchReport,
    ) -> Result<()> {
        let at = format!("line {}", env.line);
        let peer = from.peer();
        let mail_from = if env.mail_from.is_empty() {
            String::new()
        } else {
            match Address::parse(&env.mail_from) {
                Ok(a) => a.to_string(),
                Err(e) => {
                    report.applied.refused += 1;
                    report.problems.push(format!(
                        "{at}: the sender <{}> is not an address ({e}); the message was dropped",
                        env.mail_from
                    ));
                    return Ok(());
                }
            }
        };
        // The relay rules (mail::rules): a known peer is trusted only as
        // far as the carrier vouches for it, an unknown node as a stranger
        // on the MX port, the hub's own command line as its operator.
        let routes = self.rule_routes().await?;
        let domains = peer.map(|p| p.domain_list()).unwrap_or_default();
        let source = match from {
            BatchFrom::Peer(p) => Source::Peer {
                id: p.id,
                domains: &domains,
                hops: 0,
                expired: false,
            },
            BatchFrom::UnknownNode(_) => Source::Stranger,
            BatchFrom::Local => Source::Local,
        };
        if let Err(refused) = rules::sender(source, &mail_from, &self.config.domains, &routes) {
            tracing::warn!(peer = ?peer.map(|p| &p.name), sender = %mail_from, %refused, "refused a batch SMTP message by its sender");
            report.applied.refused += 1;
            report.problems.push(match peer {
                Some(p) => format!(
                    "{at}: {} may not send as <{mail_from}> (its domains: {}); the message was dropped",
                    p.name,
                    domains.join(", ")
                ),
                None => format!("{at}: {refused}; the message was dropped"),
            });
            return Ok(());
        }
        let mut failures: Vec<Failure> = env
            .bad_rcpts
            .iter()
            .map(|(written, why)| failure(written, "5.1.3", why.clone()))
            .collect();
        let mut rcpts = Vec::new();
        for r in &env.rcpts {
            match rules::recipient(source, r, &self.config.domains, &routes) {
                Ok(Place::Local(a) | Place::Onward(a)) => rcpts.push(a.to_string()),
                Err(why) => failures.push(failure(r, why.status(), why.to_string())),
            }
        }
        let all: Vec<String> = env
            .rcpts
            .iter()
            .cloned()
            .chain(env.bad_rcpts.iter().map(|(w, _)| w.clone()))
            .collect();
        let Received { spool, header } = match received {
            Ok(r) => r,
            Err(e) => {
                // Too big, or an endless header: nothing was kept to bounce with.
                for r in std::mem::take(&mut rcpts) {
                    failures.push(failure(&r, "5.3.4", e.to_string()));
                }
                report.problems.push(format!("{at}: {e}"));
                let what = format!("{at}: {e}");
                return self
                    .bounce_once(&mail_from, &all, &what, &failures, report)
                    .await;
            }
        };
        let id = item_id(&mail_from, &all, &spool.hash());
        if self.store.items_seen(std::slice::from_ref(&id)).await?[0] {
            report.applied.duplicates += 1;
            return Ok(());
        }
        if self.config.require_encryption && !rcpts.is_empty() {
            let (mf, rc, head) = (mail_from.clone(), rcpts.clone(), header.clone());
            let (spool_back, verdict) =
                policy::check_spooled(Direction::Incoming, mf, rc, head, spool)
                    .await
                    .map_err(|e| RelayError::BadItem(format!("policy task failed: {e}")))?;
            if let Err(refused) = verdict? {
                for r in std::mem::take(&mut rcpts) {
                    failures.push(failure(&r, "5.7.1", refused.to_string()));
                }
            }
            return self
                .commit_message(
                    peer, id, &mail_from, rcpts, failures, spool_back, &header, report, &at,
                )
                .await;
        }
        self.commit_message(
            peer, id, &mail_from, rcpts, failures, spool, &header, report, &at,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_message(
        &self,
        peer: Option<&PeerRow>,
        id: String,
        mail_from: &str,
        rcpts: Vec<String>,
        mut failures: Vec<Failure>,
        spool: store::Spool,
        header: &[u8],
        report: &mut BatchReport,
        at: &str,
    ) -> Result<()> {
        let _guard = self.store.blob_guard().await;
        let blob = spool.commit().await?;
        let item = Item {
            id: [0; 32],
            mail_from: mail_from.to_string(),
            rcpts,
            age_ms: 0,
            lifetime_ms: self.config.lifetime_ms,
            hops: 0,
            message: Vec::new(),
        };
        let (place, more) = self.place_item(&item, blob).await?;
        failures.extend(more);
        for f in &failures {
            report.problems.push(format!(
                "{at}: <{}> refused ({} {}){}",
                f.recipient,
                f.status,
                f.diagnostic,
                if mail_from.is_empty() {
                    String::new()
                } else {
                    format!("; a bounce goes to <{mail_from}>")
                }
            ));
        }
        let bounce = if failures.is_empty() {
            None
        } else {
            self.bounce_for(mail_from, &failures, header_section(header))
                .await?
        };
        let applied = self
            .store
            .import_classic(
                peer.map(|p| p.id),
                &ImportedItem {
                    item_id: id,
                    place: Some(place),
                    bounce,
                },
            )
            .await?;
        let a = &mut report.applied;
        a.delivered += applied.delivered;
        a.forwarded += applied.forwarded;
        a.duplicates += applied.duplicates;
        a.bounced += applied.bounced;
        Ok(())
    }

    /// The next item queued for classic peer `p` as sendmail(1) takes it:
    /// (`-f SENDER RCPT…`, the message). No item: empty rows.
    pub async fn export_classic_message(
        &self,
        p: PeerRow,
    ) -> Result<((Vec<String>, Vec<u8>), Exported)> {
        let rows = self.store.outbox_for_peer(p.id).await?;
        let mut exported = Exported::classic(p);
        let Some(r) = rows.into_iter().next() else {
            return Ok(((Vec::new(), Vec::new()), exported));
        };
        let rcpts = r.recipients();
        // An argument that starts with '-' would be read as an option.
        if let Some(bad) = rcpts.iter().find(|a| a.starts_with('-')) {
            return Err(RelayError::Outbox(format!(
                "outbox item {} has a recipient sendmail would take for an option ({bad}): drop it or route it elsewhere",
                r.id
            )));
        }
        let sender = if r.mail_from.is_empty() {
            "<>".to_string()
        } else {
            r.mail_from.clone()
        };
        let mut args = vec!["-f".to_string(), sender];
        args.extend(rcpts);
        let body = self.store.blob_read(&r.blob_hash).await?;
        exported.rows.push(r.id);
        exported.bytes = body.len() as u64;
        exported.message_bytes = body.len() as u64;
        Ok(((args, body), exported))
    }

    /// Write up to `limit` items queued for classic peer `p` as one batch.
    pub async fn export_classic<W: Write + Send + 'static>(
        &self,
        p: PeerRow,
        out: W,
        limit: Option<usize>,
    ) -> Result<(W, Exported)> {
        let mut rows = self.store.outbox_for_peer(p.id).await?;
        if let Some(limit) = limit {
            rows.truncate(limit);
        }
        let seq = self.store.peer_take_seq(p.id).await?;
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    self.store.blob_path(&r.blob_hash),
                    r.mail_from.clone(),
                    r.recipients(),
                )
            })
            .collect();
        let (out, done, message_bytes, bytes) =
            tokio::task::spawn_blocking(move || -> Result<(W, Vec<i64>, u64, u64)> {
                let mut w = super::Counting { inner: out, n: 0 };
                let io = |path: &std::path::Path| {
                    let path = path.display().to_string();
                    move |source| RelayError::Io { path, source }
                };
                let mut done = Vec::new();
                let mut message_bytes = 0;
                for (row, path, mail_from, rcpts) in items {
                    let body = std::fs::read(&path).map_err(io(&path))?;
                    message_bytes += body.len() as u64;
                    bsmtp::write_message(&mut w, &mail_from, &rcpts, &body)
                        .map_err(io(std::path::Path::new("the batch")))?;
                    done.push(row);
                }
                w.write_all(bsmtp::QUIT)
                    .and_then(|()| w.flush())
                    .map_err(io(std::path::Path::new("the batch")))?;
                Ok((w.inner, done, message_bytes, w.n))
            })
            .await
            .map_err(|e| RelayError::BadItem(format!("export task failed: {e}")))??;
        let mut exported = Exported::classic(p);
        exported.seq = seq;
        exported.rows = done;
        exported.bytes = bytes;
        exported.message_bytes = message_bytes;
        Ok((out, exported))
    }
}
