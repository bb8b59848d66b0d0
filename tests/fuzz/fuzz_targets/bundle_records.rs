//! The decrypted inside of a bundle: a zstd stream of length-prefixed
//! postcard records. Reached in the field only after authentication, but
//! an authenticated peer can still be buggy or hostile.
#![no_main]

use cairn::relay::bundle::{Limits, RecordReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_plain: 1 << 20,
        max_record: 64 << 10,
    };
    if let Ok(mut r) = RecordReader::new(data, limits) {
        let mut n = 0;
        while let Ok(Some(_)) = r.next_record() {
            n += 1;
            assert!(n < 1 << 20, "more records than bytes");
        }
    }
});
