//! A radio frame as heard on the air: the header decoder and the turn and
//! hello body decoders must never panic, and what decodes must encode back
//! to the same bytes. The same bytes as a record from a peer: unpacking
//! never panics nor inflates past its bound, and folding any bytes for
//! the air unfolds to the same bytes.
#![no_main]

use cairn::relay::radio::frame::{Frame, Hello, Turn};
use cairn::relay::radio::squeeze;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(f) = Frame::decode(data) {
        assert_eq!(f.encode(), data);
        let _ = f.nonce();
    }
    if let Some(t) = Turn::decode(data) {
        assert_eq!(&t.encode()[..], data);
    }
    if let Some(h) = Hello::decode(data) {
        assert_eq!(&h.encode()[..], data);
    }
    if let Ok(r) = squeeze::unpack(data, 4096) {
        assert!(r.len() <= 4096);
    }
    assert_eq!(squeeze::unfold(&squeeze::fold(data), data.len()).as_deref(), Some(data));
});
