//! The hub-wide bound on literals being received (RFC 3501 §4.3, §7.5;
//! LITERAL+ RFC 7888). After login a literal may be as large as a message
//! (an APPEND), and imap-next holds a command's literals in memory until
//! the command is complete; with enough accounts and connections that
//! would be any amount of memory. So the connection reads a logged-in
//! client's input as lines and literals ([`Framer`]), and a literal
//! larger than [`FREE_LITERAL`] is only taken in when the hub-wide
//! [`Budget`] has room for it — before the `+` that asks for a
//! synchronizing literal. When there is no room within [`BUDGET_WAIT`],
//! the command is refused with a tagged `NO [LIMIT]` (a LITERAL+ literal,
//! which the client sends unasked, is then read and dropped).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A literal up to this size needs no room in the budget (the command's
/// own bound covers it).
pub const FREE_LITERAL: u64 = 64 << 10;

/// The budget is twice the message size, and at least this.
pub const MIN_BUDGET: u64 = 64 << 20;

/// How long a command waits for room before it is refused.
pub const BUDGET_WAIT: Duration = Duration::from_secs(30);

/// While a client holds room in the budget, it must keep sending: a read
/// that waits longer than this ends the connection.
pub const HOLDING_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The bytes of literals all IMAP connections may hold at once.
#[derive(Debug, Clone)]
pub struct Budget {
    room: Arc<Semaphore>,
    size: u64,
}

impl Budget {
    /// The budget for a hub whose largest message is `max_message_size`.
    pub fn for_message_size(max_message_size: u64) -> Budget {
        let size = max_message_size.saturating_mul(2).max(MIN_BUDGET);
        let size = size.min(Semaphore::MAX_PERMITS as u64);
        Budget {
            room: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }

    /// Room for `bytes`, waiting up to [`BUDGET_WAIT`]; `None` when there
    /// was none (or it could never fit).
    pub async fn take(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        if bytes > self.size {
            return None;
        }
        let n = u32::try_from(bytes).ok()?;
        tokio::time::timeout(BUDGET_WAIT, self.room.clone().acquire_many_owned(n))
            .await
            .ok()?
            .ok()
    }

    /// Bytes free now.
    #[cfg(test)]
    fn free(&self) -> u64 {
        self.room.available_permits() as u64
    }
}

/// What the next piece of a client's input is.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Nothing complete yet: read more.
    NeedMore,
    /// Bytes to hand on as they are: a line with no literal after it, or
    /// (part of) a literal's data.
    Pass(usize),
    /// A line that announces a literal of `size` bytes (`sync`: the
    /// client waits for `+`); `len` bytes including the line end. `first`:
    /// the line begins a command (imap-next holds nothing of it yet).
    Announce {
        len: usize,
        size: u64,
        sync: bool,
        first: bool,
    },
}

/// Splits a client's input into lines and literal data, to see each
/// literal's size before its data.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes of literal data still to come.
    literal_left: u64,
    /// The next line continues a command (it follows a literal).
    in_command: bool,
}

/// A line longer than this is handed on without its end: imap-next
/// refuses it by its own command limit.
const LONGEST_LINE: usize = 64 << 10;

impl Framer {
    /// The next piece of `input` (what was read and not handed on yet).
    pub fn next(&mut self, input: &[u8]) -> Piece {
        if input.is_empty() {
            return Piece::NeedMore;
        }
        if self.literal_left > 0 {
            let n = (input.len() as u64).min(self.literal_left);
            self.literal_left -= n;
            return Piece::Pass(n as usize);
        }
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            return if input.len() > LONGEST_LINE {
                self.in_command = true;
                Piece::Pass(input.len())
            } else {
                Piece::NeedMore
            };
        };
        let len = end + 1;
        let first = !self.in_command;
        match announced(&input[..end]) {
            Some((size, sync)) => {
                self.in_command = true;
                Piece::Announce {
                    len,
                    size,
                    sync,
                    first,
                }
            }
            None => {
                self.in_command = false;
                Piece::Pass(len)
            }
        }
    }

    /// The data of the literal just announced follows (the server asked
    /// for it, or the client sends it unasked).
    pub fn expect_literal(&mut self, size: u64) {
        self.literal_left = size;
    }

    /// The literal just announced was refused before the client sent it:
    /// its command is over.
    pub fn refused(&mut self) {
        self.in_command = false;
    }

    /// Whether the last piece left a command unfinished.
    pub fn in_command(&self) -> bool {
        self.in_command || self.literal_left > 0
    }
}

/// The literal a line (without its `\n`) announces at its end: `{N}`,
/// `{N+}` (LITERAL+), or `~{N}` (BINARY).
fn announced(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let sync = match digits.strip_suffix(b"+") {
        Some(d) => {
            digits = d;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .map(|n| (n, sync))
}

/// The tag of a command line, when it is one a response may carry.
pub fn tag_of(line: &[u8]) -> Option<&str> {
    let tag = line.split(|&b| b == b' ').next()?;
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b));
    if ok {
        std::str::from_utf8(tag).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_literals_are_told_apart() {
        let mut f = Framer::default();
        let input = b"a1 APPEND INBOX {12}\r\nhello\r\nworld\r\na2 NOOP\r\n";
        assert_eq!(
            f.next(input),
            Piece::Announce {
                len: 22,
                size: 12,
                sync: true,
                first: true
            }
        );
        f.expect_literal(12);
        // The literal's own line ends are data, not lines.
        assert_eq!(f.next(&input[22..]), Piece::Pass(12));
        assert_eq!(f.next(&input[34..]), Piece::Pass(2));
        assert!(!f.in_command(), "the command ended with its line");
        assert_eq!(f.next(&input[36..]), Piece::Pass(9));
        assert_eq!(f.next(b""), Piece::NeedMore);
        // A line is handed on only when it is whole.
        assert_eq!(f.next(b"a3 APPEND INBOX {3"), Piece::NeedMore);
        assert_eq!(
            f.next(b"a3 APPEND INBOX {30000000+}\r\n"),
            Piece::Announce {
                len: 29,
                size: 30_000_000,
                sync: false,
                first: true
            }
        );
        // A literal's data arriving in parts; the line after it continues
        // the command.
        f.expect_literal(5);
        assert_eq!(f.next(b"abc"), Piece::Pass(3));
        assert_eq!(f.next(b"defg\r\n"), Piece::Pass(2));
        assert_eq!(
            f.next(b" {4}\r\n"),
            Piece::Announce {
                len: 6,
                size: 4,
                sync: true,
                first: false
            }
        );
    }

    #[test]
    fn only_a_literal_at_the_end_of_a_line_counts() {
        for line in [
            &b"a SEARCH SUBJECT \"{5}\"\r\n"[..],
            b"a NOOP {}\r\n",
            b"a NOOP {x}\r\n",
            b"a NOOP {99999999999999999999}\r\n",
            b"a NOOP 5}\r\n",
        ] {
            assert_eq!(
                Framer::default().next(line),
                Piece::Pass(line.len()),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(announced(b"a APPEND X ~{7}"), Some((7, true)));
        assert_eq!(announced(b"a LOGIN {3+}"), Some((3, false)));
    }

    #[test]
    fn an_endless_line_is_handed_on() {
        let long = vec![b'a'; LONGEST_LINE + 1];
        assert_eq!(Framer::default().next(&long), Piece::Pass(long.len()));
    }

    #[test]
    fn tags_that_may_be_answered() {
        assert_eq!(tag_of(b"a1 APPEND INBOX {5}"), Some("a1"));
        assert_eq!(tag_of(b"* APPEND"), None);
        assert_eq!(tag_of(b"a+b APPEND"), None);
        assert_eq!(tag_of(b" APPEND"), None);
    }

    #[tokio::test]
    async fn the_budget_is_shared_and_given_back() {
        let b = Budget::for_message_size(1 << 20);
        assert_eq!(b.free(), MIN_BUDGET);
        let held = b.take(MIN_BUDGET - 10).await.unwrap();
        assert_eq!(b.free(), 10);
        drop(held);
        assert_eq!(b.free(), MIN_BUDGET);
        assert!(b.take(MIN_BUDGET + 1).await.is_none(), "never fits");
    }
}
