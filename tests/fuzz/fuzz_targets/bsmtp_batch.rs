//! A batch SMTP stream as a classic peer might send it, fed to the decoder
//! in pieces whose sizes the first byte chooses. The decoder must never
//! panic, always make progress, keep Body inside Begin…End, and hold no
//! more than a command line of input.
#![no_main]

use cairn::relay::bsmtp::{Decoder, Event, MAX_COMMAND_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, batch)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut d = Decoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut in_message = false;
    for _ in 0..4 * batch.len() + 16 {
        let eof = fed == batch.len();
        let (n, ev) = d.next(&buf, eof);
        assert!(n <= buf.len());
        let mut need = false;
        match ev {
            Event::NeedMore => {
                assert!(!eof, "NeedMore at the end of the input");
                need = true;
            }
            Event::Begin(env) => {
                assert!(!in_message && !env.rcpts.is_empty());
                in_message = true;
            }
            Event::Body(b) => assert!(in_message && !b.is_empty()),
            Event::End => {
                assert!(in_message);
                in_message = false;
            }
            Event::Nothing | Event::Refused(_) => {}
            Event::Finished | Event::Truncated(_) => return,
        }
        if !need {
            assert!(n > 0, "an event that used no input");
        }
        buf.drain(..n);
        if need {
            // What it holds back is at most a command line.
            assert!(buf.len() < MAX_COMMAND_LINE + step);
            let take = step.min(batch.len() - fed);
            buf.extend_from_slice(&batch[fed..fed + take]);
            fed += take;
        }
    }
    panic!("the decoder did not finish");
});
