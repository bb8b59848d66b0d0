//! Bytes from a serial line, as an RNode (or noise) might send them, fed
//! to the KISS deframer in pieces whose sizes the first byte chooses.
//! It must never panic, never yield a frame over its bound, and every
//! frame it yields must survive encoding and deframing again unchanged.
#![no_main]

use cairn::carriers::lora::kiss::{Deframer, MAX_FRAME, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut d = Deframer::new();
    for piece in wire.chunks(step) {
        for f in d.feed(piece) {
            assert!(1 + f.data.len() <= MAX_FRAME);
            let mut again = Deframer::new();
            let back = again.feed(&encode(f.command, &f.data));
            assert_eq!(back.len(), 1);
            assert_eq!(back[0], f);
        }
    }
});
