//! Commands of any state (RFC 3501 §6.1, §6.2.1) and ID (RFC 2971).

use crate::imap::CAPABILITIES_AUTHENTICATED;
use crate::imap::session::*;
use imap_next::imap_types::core::{IString, NString, Quoted, Tag};
use imap_next::imap_types::extensions::enable::CapabilityEnable;
use imap_next::imap_types::response::{Data, Status};
use imap_next::server::Server;

/// RFC 3501 §6.1.1 CAPABILITY
pub(crate) fn capability_cmd(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
) -> Status<'static> {
    let authenticated = s.account().is_some();
    let list = if authenticated {
        CAPABILITIES_AUTHENTICATED.to_vec()
    } else {
        s.pre_auth_caps()
    };
    server.enqueue_data(Data::Capability(caps(&list)));
    ok(tag, None, "CAPABILITY completed")
}

/// RFC 2971 ID: who this server is.
pub(crate) fn id(server: &mut Server, tag: &Tag<'static>) -> Status<'static> {
    let params = vec![
        (
            IString::from(Quoted::try_from("name").unwrap()),
            NString::try_from("cairn").unwrap(),
        ),
        (
            IString::from(Quoted::try_from("version").unwrap()),
            NString::try_from(env!("CARGO_PKG_VERSION")).unwrap(),
        ),
    ];
    server.enqueue_data(Data::Id {
        parameters: Some(params),
    });
    ok(tag, None, "ID completed")
}

/// RFC 3501 §6.2.1 STARTTLS
pub(crate) fn starttls(s: &mut Session, tag: &Tag<'static>) -> Status<'static> {
    let authenticated = s.account().is_some();
    if s.tls {
        bad(tag, "TLS is already active")
    } else if authenticated {
        bad(tag, "STARTTLS only before login")
    } else {
        s.starttls = true;
        ok(tag, None, "begin TLS negotiation now")
    }
}

/// RFC 3501 §6.1.2 NOOP, and §6.4.1 CHECK (every change is durable once
/// made, so a checkpoint is nothing to do): both report what other
/// sessions changed, as other servers do; `done` is the tagged OK's text.
pub(crate) async fn noop(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    done: &'static str,
) -> Status<'static> {
    report_changes(s, server, true).await;
    ok(tag, None, done)
}

/// RFC 3501 §6.1.3 LOGOUT
pub(crate) fn logout(s: &mut Session, server: &mut Server, tag: &Tag<'static>) -> Status<'static> {
    server.enqueue_status(Status::bye(None, text("logging out")).expect("bye"));
    s.logout = true;
    ok(tag, None, "LOGOUT completed")
}

/// RFC 5161 ENABLE. CONDSTORE works always (RFC 7162 §3.1: it is on
/// from the first command that uses it); QRESYNC (§3.2.3, which implies
/// CONDSTORE) switches expunges to VANISHED and allows SELECT's QRESYNC
/// parameter and UID FETCH's VANISHED. Only after login; the ENABLED
/// response lists what this command switched on.
pub(crate) fn enable(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    asked: &[CapabilityEnable<'static>],
) -> Status<'static> {
    let mut enabled = Vec::new();
    if s.account().is_some() {
        for c in asked {
            let name = c.to_string();
            if name.eq_ignore_ascii_case("QRESYNC") && !s.qresync {
                s.qresync = true;
                enabled.push(c.clone());
            } else if name.eq_ignore_ascii_case("CONDSTORE") {
                enabled.push(c.clone());
            }
        }
    }
    server.enqueue_data(Data::Enabled {
        capabilities: enabled,
    });
    ok(tag, None, "ENABLE completed")
}
