//! A whole bundle file as a peer might send it: header, handshake, chunks.
//! The reader must refuse anything not made by the known sender for this
//! node, without panicking or allocating past its limits.
#![no_main]

use cairn::relay::bundle::{BundleReader, Header, Limits};
use cairn::relay::node::public_of;
use libfuzzer_sys::fuzz_target;

const ME: [u8; 32] = [2; 32];

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_plain: 1 << 20,
        max_record: 64 << 10,
    };
    let mut input = data;
    let Ok(header) = Header::read(&mut input) else {
        return;
    };
    // The reader is only opened for a known peer addressed to us.
    if header.to != public_of(&ME) {
        return;
    }
    if let Ok(mut r) = BundleReader::open(input, &header, &ME, limits) {
        while let Ok(Some(_)) = r.next_record() {}
    }
});
