//! The radio session's own tests (kept apart so the session reads in one go).

use super::*;
use proptest::prelude::*;

proptest! {
    /// Records cut into segments of any size, the segments arriving in
    /// any order within the window and some twice, come out whole,
    /// in order, once.
    #[test]
    fn records_survive_fragmentation_and_reordering(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..12),
        seg in 16usize..240,
        swaps in proptest::collection::vec((0usize..64, 0usize..64), 0..40),
        dups in proptest::collection::vec(0usize..64, 0..10),
    ) {
        let mut o = Out { fold: true, pending: VecDeque::new(), open: true, next_seq: 0, unacked: BTreeMap::new() };
        for r in &records {
            push_record(&mut o, r);
        }
        let bytes: Vec<u8> = o.pending.drain(..).collect();
        let segments: Vec<Vec<u8>> = bytes.chunks(seg).map(<[u8]>::to_vec).collect();
        let mut i = In { cum: 0, ooo: BTreeMap::new(), buf: Vec::new(), fin: None };
        let mut got = Vec::new();
        // Deliver window by window, shuffled and with duplicates.
        for (w, window) in segments.chunks(64).enumerate() {
            let mut order: Vec<usize> = (0..window.len()).collect();
            for &(a, b) in &swaps {
                if a < order.len() && b < order.len() {
                    order.swap(a, b);
                }
            }
            for &d in &dups {
                if d < window.len() {
                    order.push(d);
                }
            }
            for k in order {
                take_segment(&mut i, (w * 64 + k) as u32, window[k].clone(), 64);
                while let Some(r) = next_record(&mut i.buf).unwrap() {
                    got.push(r);
                }
            }
        }
        prop_assert_eq!(i.cum as usize, segments.len());
        prop_assert_eq!(got, records);
    }
}
