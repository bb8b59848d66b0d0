//! QUOTA (RFC 9208) and METADATA (RFC 5464).

use crate::imap::session::*;
use imap_next::imap_types::core::{AString, NString, Tag, Vec1};
use imap_next::imap_types::extensions::metadata::{EntryValue, MetadataResponse};
use imap_next::imap_types::extensions::quota::{QuotaGet, Resource};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::Code;
use imap_next::imap_types::response::{Data, Status};
use imap_next::server::Server;

/// RFC 9208 §5.1 untagged QUOTA for the account's one root, "".
pub(crate) async fn quota(s: &mut Session, server: &mut Server) {
    let account = s.account().unwrap();
    let used = s.store().account_usage(account).await.unwrap_or(0) as u64;
    // The account's own quota if the admin set one, else the hub's.
    let limit = match s.store().account_quota(account).await {
        Ok(Some(q)) => q.max(0) as u64,
        _ => s.ctx.quota,
    };
    server.enqueue_data(Data::Quota {
        root: AString::try_from("").unwrap(),
        quotas: Vec1::from(QuotaGet {
            resource: Resource::Storage,
            usage: used / 1024,
            limit: limit / 1024,
        }),
    });
}

/// RFC 5464 §4.2 GETMETADATA: the server's /shared/comment and
/// /shared/admin, the account's /private/ entries.
// Deviation: the MAXSIZE and DEPTH options are ignored: each named entry
// is answered whole, and entries below a name are never listed.
pub(crate) async fn get_metadata(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    mailbox: Mailbox<'static>,
    entries: &[imap_next::imap_types::extensions::metadata::Entry<'static>],
) -> Status<'static> {
    let names: Vec<String> = entries.iter().map(|e| astr(e.inner())).collect();
    let server_level = matches!(&mailbox, Mailbox::Other(o) if o.inner().as_ref().is_empty());
    let mut values = Vec::new();
    for name in names {
        let value = if server_level && name == "/shared/comment" {
            s.ctx.comment.clone()
        } else if server_level && name == "/shared/admin" {
            s.ctx.admin.clone()
        } else if name.starts_with("/private/") {
            s.store()
                .metadata_get(s.account().unwrap(), &name)
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        if let Some(v) = value {
            let Ok(entry) = imap_next::imap_types::extensions::metadata::Entry::try_from(
                AString::try_from(name.clone()).unwrap(),
            ) else {
                continue;
            };
            let nstring = NString::try_from(v.clone()).unwrap_or_else(|_| literal(v.into_bytes()));
            values.push(EntryValue {
                entry,
                value: imap_next::imap_types::core::NString8::NString(nstring),
            });
        }
    }
    if let Ok(v) = Vec1::try_from(values) {
        server.enqueue_data(Data::Metadata {
            mailbox,
            items: MetadataResponse::WithValues(v),
        });
    }
    ok(tag, None, "GETMETADATA completed")
}

/// RFC 9208 §4.3 GETQUOTAROOT: one root, "", for all of an account's mail.
pub(crate) async fn get_quota_root(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    mailbox: Mailbox<'static>,
) -> Status<'static> {
    server.enqueue_data(Data::QuotaRoot {
        mailbox,
        roots: vec![AString::try_from("").unwrap()],
    });
    quota(s, server).await;
    ok(tag, None, "GETQUOTAROOT completed")
}

/// RFC 5464 §4.3 SETMETADATA: only /private/ entries, at most 64 KiB each.
pub(crate) async fn set_metadata(
    s: &mut Session,
    tag: &Tag<'static>,
    entry_values: &[imap_next::imap_types::extensions::metadata::EntryValue<'static>],
) -> Status<'static> {
    let mut st = ok(tag, None, "SETMETADATA completed");
    for ev in entry_values {
        let name = astr(ev.entry.inner());
        if !name.starts_with("/private/") {
            st = no(
                tag,
                Some(Code::Metadata(
                    imap_next::imap_types::extensions::metadata::MetadataCode::NoPrivate,
                )),
                "only /private/ entries can be set",
            );
            break;
        }
        let value = match &ev.value {
            imap_next::imap_types::core::NString8::NString(n) => {
                n.0.as_ref()
                    .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
            }
            imap_next::imap_types::core::NString8::Literal8(l) => {
                Some(String::from_utf8_lossy(&l.data).into_owned())
            }
        };
        if value.as_ref().is_some_and(|v| v.len() > 64 << 10) {
            st = no(
                tag,
                Some(Code::Metadata(
                    imap_next::imap_types::extensions::metadata::MetadataCode::MaxSize(64 << 10),
                )),
                "value too large",
            );
            break;
        }
        if let Err(e) = s
            .store()
            .metadata_set(s.account().unwrap(), &name, value.as_deref())
            .await
        {
            st = unavailable(tag, e);
            break;
        }
    }
    st
}

/// RFC 9208 §4.2 GETQUOTA
pub(crate) async fn get_quota(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
) -> Status<'static> {
    quota(s, server).await;
    ok(tag, None, "GETQUOTA completed")
}
