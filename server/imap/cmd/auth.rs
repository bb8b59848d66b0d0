//! Logging in: LOGIN and AUTHENTICATE PLAIN (RFC 3501 §6.2, RFC 4616).

use crate::imap::CAPABILITIES_AUTHENTICATED;
use crate::imap::session::*;
use crate::mail::transaction::{MailError, Origin};
use imap_next::imap_types::core::AString;
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::response::{Code, Status};

/// RFC 4616 PLAIN: authzid NUL authcid NUL passwd (already base64-decoded).
pub(crate) async fn auth_plain(s: &mut Session, tag: &Tag<'static>, raw: &[u8]) -> Status<'static> {
    let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    if parts.len() != 3 {
        return bad(tag, "PLAIN wants authzid NUL user NUL password");
    }
    let authz = String::from_utf8_lossy(parts[0]).to_string();
    let user = String::from_utf8_lossy(parts[1]).to_string();
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(&user) {
        return no(
            tag,
            Some(Code::Other(code_other("AUTHORIZATIONFAILED"))),
            "acting for another user is not allowed",
        );
    }
    let pass = String::from_utf8_lossy(parts[2]).to_string();
    login(s, tag, &user, &pass).await
}

/// Check credentials; on success the tagged OK carries the capabilities
/// (Delta Chat reads them only there).
pub(crate) async fn login(
    s: &mut Session,
    tag: &Tag<'static>,
    user: &str,
    pass: &str,
) -> Status<'static> {
    match s.ctx.rules.login(s.peer.ip(), user, pass).await {
        Ok(Some(Origin::User {
            credential,
            address,
        })) => {
            s.state = SessionState::Authenticated {
                account: credential.account,
                address,
            };
            s.credential = Some(credential);
            ok(
                tag,
                Some(Code::Capability(caps(CAPABILITIES_AUTHENTICATED))),
                "logged in",
            )
        }
        Ok(_) => {
            s.errors += 1;
            no(
                tag,
                Some(Code::Other(code_other("AUTHENTICATIONFAILED"))),
                "wrong user name or password",
            )
        }
        Err(MailError::LoginsBlocked { wait, .. }) => no(
            tag,
            Some(Code::Other(code_other("UNAVAILABLE"))),
            format!(
                "too many failed logins from your address: try again in {} s",
                wait.as_secs().max(1)
            ),
        ),
        Err(e) => no(
            tag,
            Some(Code::Other(code_other("UNAVAILABLE"))),
            format!("temporary problem: {e}"),
        ),
    }
}

/// RFC 3501 §6.2.3 LOGIN
pub(crate) async fn login_cmd(
    s: &mut Session,
    tag: &Tag<'static>,
    username: &AString<'static>,
    password: imap_next::imap_types::secret::Secret<AString<'static>>,
) -> Status<'static> {
    let authenticated = s.account().is_some();
    if authenticated {
        bad(tag, "already logged in")
    } else if !s.login_allowed() {
        no(
            tag,
            Some(Code::Other(code_other("PRIVACYREQUIRED"))),
            "use TLS first (STARTTLS or the implicit-TLS port)",
        )
    } else {
        let user = astr(username);
        let pass = astr(password.declassify());
        login(s, tag, &user, &pass).await
    }
}
