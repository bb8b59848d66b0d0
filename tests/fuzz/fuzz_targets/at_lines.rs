//! Bytes from an RYLR998's UART (or noise) fed to the AT line reader in
//! pieces whose sizes the first byte chooses; every line parsed both as a
//! modem reply and as a host command. Nothing may panic, no line may pass
//! its bound, and a parsed `+RCV` or `AT+SEND` must encode back to a line
//! that parses to the same value.
#![no_main]

use cairn::carriers::lora::at::{Command, LineReader, MAX_LINE, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut r = LineReader::new();
    for piece in wire.chunks(step) {
        for line in r.feed(piece) {
            assert!(line.len() <= MAX_LINE);
            if let Ok(reply @ Reply::Rcv { .. }) = Reply::parse(&line) {
                let enc = reply.encode();
                let again = Reply::parse(&enc[..enc.len() - 2]).unwrap();
                assert_eq!(again, reply);
            }
            if let Ok(cmd @ Command::Send { .. }) = Command::parse(&line) {
                let enc = cmd.encode();
                let again = Command::parse(&enc[..enc.len() - 2]).unwrap();
                assert_eq!(again, cmd);
            }
        }
    }
});
