//! A whole IMAP connection as a client might send it: imap-codec's parser
//! and our command handling (sequence sets, SEARCH, FETCH, APPEND, IDLE,
//! MOVE, METADATA…) against a real store. The first byte chooses an
//! encrypted connection (LOGIN allowed) or a plain one (STARTTLS offered);
//! the rest is the client's bytes. Nothing may panic or hang, and the
//! server always greets first.
#![no_main]

#[path = "hub/mod.rs"]
mod hub;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&how, input)) = data.split_first() else {
        return;
    };
    let out = hub::imap(how & 1 == 0, input);
    assert!(out.starts_with(b"* OK "), "no greeting first");
});
