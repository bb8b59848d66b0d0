//! Load: 200 IMAP sessions idle in their INBOXes while 50 messages a
//! second are submitted over SMTP for 60 seconds. Every submission must be
//! accepted, every idling session must be told of every message for its
//! account, and every account must end with exactly the messages sent to
//! it — none lost, none twice. Rates and latencies are printed, never
//! asserted (this machine is shared and slow; the numbers go in the notes).

mod common;
use common::imap::Imap;
use common::smtp::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

const ACCOUNTS: usize = 20;
const SESSIONS: usize = 200;
const PER_SECOND: u64 = 50;
const SECONDS: u64 = 60;
/// Submission connections, as phones keep theirs open.
const SENDERS: usize = 10;
/// How long after the last submission every session may take to see it.
const SETTLE: Duration = Duration::from_secs(60);

fn user(i: usize) -> String {
    format!("load{i}@[127.0.0.1]")
}

fn message(k: u64, from: &str) -> String {
    format!("Message-ID: <load-{k}@cairn.test>\r\n{}", encrypted(from))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_idle_sessions_and_fifty_messages_a_second_for_a_minute() {
    let (_t, hub) = hub(|c| {
        c.limits.max_connections = 1000;
        // Every session comes from 127.0.0.1.
        c.limits.max_connections_per_address = 1000;
        c.limits.send_per_minute = 1_000_000;
        c.limits.send_burst = 1_000_000;
    })
    .await;
    let domains = vec!["[127.0.0.1]".parse().unwrap()];
    let accounts = cairn::mail::Accounts::new(hub.store.clone(), domains);
    for i in 0..ACCOUNTS {
        let pw = cairn::domain::Password::chosen(PASSWORD).unwrap();
        accounts.create(&user(i), Some(pw)).await.unwrap();
    }
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap();
    let smtp = hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let cert = hub_cert(&hub);
    let total = PER_SECOND * SECONDS;
    let per_account = total / ACCOUNTS as u64;

    // 200 sessions log in, select INBOX and idle; 10 per account.
    let ready = Arc::new(Barrier::new(SESSIONS + 1));
    let mut idlers = tokio::task::JoinSet::new();
    let login_start = Instant::now();
    for s in 0..SESSIONS {
        let (cert, ready) = (cert.clone(), ready.clone());
        idlers.spawn(async move {
            let who = user(s % ACCOUNTS);
            let (mut c, _) = Imap::tls_with(imap, cert).await;
            let r = c.login(&who, PASSWORD).await;
            assert!(r.ok(), "session {s}: login: {}", r.all());
            let r = c.cmd("SELECT INBOX").await;
            assert!(r.ok(), "session {s}: SELECT: {}", r.all());
            let tag = c.idle().await;
            ready.wait().await;
            let mut seen = 0u64;
            let deadline = tokio::time::Instant::now()
                + Duration::from_secs(SECONDS)
                + SETTLE
                + Duration::from_secs(30);
            while seen < per_account {
                let line = tokio::time::timeout_at(deadline, c.line())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("session {s} ({who}): saw {seen} of {per_account} messages")
                    })
                    .unwrap_or_else(|| panic!("session {s}: the server closed the connection"));
                if let Some(n) = line
                    .strip_prefix("* ")
                    .and_then(|l| l.strip_suffix(" EXISTS"))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    seen = seen.max(n);
                }
            }
            let r = c.done(&tag).await;
            assert!(r.ok(), "session {s}: DONE: {}", r.all());
            (s, seen)
        });
    }
    ready.wait().await;
    let logins = login_start.elapsed();

    // 50 submissions a second on a fixed schedule over 10 connections; a
    // sender that falls behind catches up at once, so the schedule shows.
    let start = tokio::time::Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for j in 0..SENDERS {
        let cert = cert.clone();
        senders.spawn(async move {
            let from = user(j);
            let (mut c, _) = Client::tls_with(smtp, cert).await;
            c.cmd("EHLO load").await;
            let r = c.login(&from, PASSWORD).await;
            assert!(r.starts_with("235"), "sender {j}: {r}");
            let mut latencies = Vec::new();
            let mut late = Duration::ZERO;
            for k in (j as u64..total).step_by(SENDERS) {
                let at = start + Duration::from_millis(k * 1000 / PER_SECOND);
                late = late.max(tokio::time::Instant::now().saturating_duration_since(at));
                tokio::time::sleep_until(at).await;
                let to = user((k % ACCOUNTS as u64) as usize);
                let t = Instant::now();
                let r = c.mail(&from, &[&to], &message(k, &from)).await;
                latencies.push(t.elapsed());
                assert!(r.starts_with("250"), "message {k} from {from} to {to}: {r}");
            }
            assert!(c.cmd("QUIT").await.starts_with("221"));
            (latencies, late)
        });
    }
    let mut latencies = Vec::new();
    let mut late = Duration::ZERO;
    while let Some(r) = senders.join_next().await {
        let (l, d) = r.expect("a sender failed");
        latencies.extend(l);
        late = late.max(d);
    }
    let sending = start.elapsed();
    let mut sessions = 0;
    while let Some(r) = idlers.join_next().await {
        let (_, seen) = r.expect("an idling session failed");
        assert_eq!(seen, per_account);
        sessions += 1;
    }
    let settled = start.elapsed();
    assert_eq!(sessions, SESSIONS);

    // Every account holds exactly the messages sent to it, each once.
    let mut ids: HashMap<usize, Vec<String>> = HashMap::new();
    for i in 0..ACCOUNTS {
        let (mut c, _) = Imap::tls_with(imap, cert.clone()).await;
        assert!(c.login(&user(i), PASSWORD).await.ok());
        assert!(c.cmd("SELECT INBOX").await.ok());
        let r = c
            .cmd("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await;
        assert!(r.ok(), "{}", r.all());
        let found: Vec<String> = r
            .untagged
            .iter()
            .filter_map(|l| {
                let at = l.find("<load-")?;
                let end = l[at..].find('>')?;
                Some(l[at..at + end + 1].to_string())
            })
            .collect();
        ids.insert(i, found);
    }
    for (i, found) in &ids {
        let want: BTreeSet<String> = (0..total)
            .filter(|k| (k % ACCOUNTS as u64) as usize == *i)
            .map(|k| format!("<load-{k}@cairn.test>"))
            .collect();
        let got: BTreeSet<String> = found.iter().cloned().collect();
        assert_eq!(
            found.len(),
            got.len(),
            "{}: a message arrived twice",
            user(*i)
        );
        assert_eq!(got, want, "{}: lost or stray messages", user(*i));
    }

    latencies.sort();
    println!(
        "load: {SESSIONS} idling sessions logged in in {:.1} s; {total} messages on a \
         {PER_SECOND}/s schedule sent in {:.1} s ({:.1}/s achieved, at most {:.2} s behind \
         schedule); submission p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; every session saw \
         every message {:.1} s after the start",
        logins.as_secs_f64(),
        sending.as_secs_f64(),
        total as f64 / sending.as_secs_f64(),
        late.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        settled.as_secs_f64(),
    );
    hub.shutdown().await;
}
