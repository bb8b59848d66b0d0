//! A whole SMTP connection as a client or peer might send it: the command
//! parser (smtp-proto), our session state machine, AUTH, the rules on
//! senders and recipients, DATA with dot-unstuffing and the size cap, and
//! delivery into a real store. The first byte chooses the port (implicit
//! TLS submission, STARTTLS submission, MX) and whether the encryption
//! rule applies; the rest is the client's bytes. Nothing may panic or
//! hang, and the server always greets first.
#![no_main]

#[path = "hub/mod.rs"]
mod hub;

use cairn::smtp::Mode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&how, input)) = data.split_first() else {
        return;
    };
    let mode = match how % 3 {
        0 => Mode::SubmissionTls,
        1 => Mode::SubmissionStartTls,
        _ => Mode::Mx,
    };
    let out = hub::smtp(mode, how & 0x80 == 0, input);
    assert!(out.starts_with(b"220 "), "no greeting first");
});
