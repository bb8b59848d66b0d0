//! Batch SMTP (RFC 2442, `application/batch-SMTP`): the client side of SMTP
//! transactions written down with no server to answer — what Exim's
//! `use_bsmtp` transports write and `exim -bS` reads, and what classic mail
//! nodes hand to NNCP (`nncp-exec NODE rsmtp`).
//!
//! Sans-I/O: [`Decoder::next`] takes the bytes read so far and says how many
//! it used and what they meant; the caller owns the reading. Accepted as
//! written in the wild: CRLF or bare LF line ends (Exim writes LF unless
//! `use_crlf`), 8-bit bytes, long body lines, a last line without a newline.
//! HELO/EHLO/RSET reset the transaction and NOOP/VRFY/EXPN/HELP are ignored,
//! as Exim's `-bS` does. A command that cannot be used spoils only its own
//! transaction; the body of a spoilt transaction is read and thrown away,
//! never taken for commands.

use crate::domain::smtp_path::{self as path, Verb};

/// Longest command line taken. RFC 5321 §4.5.3.1.4 says 512 octets; DSN
/// parameters (ORCPT=) make real lines longer, but no sane one nears this.
pub const MAX_COMMAND_LINE: usize = 4096;
/// Recipients taken per message: Exim's `batch_max` defaults to 1000
/// recipients per batch; a peer may not make us hold more.
pub const MAX_RECIPIENTS: usize = 1000;

/// One message's envelope, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The line of its MAIL command (1-based), for reports.
    pub line: u64,
    /// The reverse-path; "" for `<>`.
    pub mail_from: String,
    /// Recipients as written (without angle brackets).
    pub rcpts: Vec<String>,
    /// Recipients that could not be read: (line as written, why).
    pub bad_rcpts: Vec<(String, String)>,
}

/// A command that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub reason: String,
    /// The transaction it spoilt, if one was open (its sender may be told).
    pub spoilt: Option<Envelope>,
}

/// What the bytes meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Give more bytes (keeping the unused ones), or `eof = true`.
    NeedMore,
    /// Used some bytes that need no action (a NOOP, a HELO, a RCPT).
    Nothing,
    /// DATA of a usable transaction: the message begins. [`Event::Body`]
    /// pieces and one [`Event::End`] follow.
    Begin(Envelope),
    /// The next bytes of the message: dot-unstuffed, line ends as written.
    Body(&'a [u8]),
    /// The message is complete.
    End,
    /// A command that cannot be used; its transaction is skipped.
    Refused(Problem),
    /// QUIT, or the end of the input between transactions.
    Finished,
    /// The input ended inside a transaction or a command line (a batch
    /// cut short): the message (if its envelope was read) must not be
    /// delivered.
    Truncated(Option<Envelope>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading commands.
    Commands,
    /// Inside DATA; `keep` is false for the body of a spoilt transaction.
    Data {
        keep: bool,
    },
    /// A command line too long: throw bytes away up to its end.
    Overlong,
    Done,
}

/// The decoder of one batch.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Lines fully read so far.
    lines: u64,
    /// The body is at the start of a line.
    line_start: bool,
    /// The transaction being read.
    tx: Option<Envelope>,
    /// The transaction was spoilt: ignore commands up to MAIL/RSET/HELO.
    spoilt: bool,
    /// Envelope of the message in DATA (for a truncation report).
    in_data: Option<Envelope>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            state: State::Commands,
            lines: 0,
            line_start: true,
            tx: None,
            spoilt: false,
            in_data: None,
        }
    }

    /// The line being read (1-based).
    pub fn line(&self) -> u64 {
        self.lines + 1
    }

    /// Decode from `input` (the bytes not yet used). Returns how many bytes
    /// were used and what they meant. `eof`: no more bytes will come.
    pub fn next<'a>(&mut self, input: &'a [u8], eof: bool) -> (usize, Event<'a>) {
        match self.state {
            State::Done => (0, Event::Finished),
            State::Overlong => match memchr(input) {
                None if !eof => (input.len(), Event::NeedMore),
                found => {
                    self.lines += 1;
                    self.state = State::Commands;
                    let spoilt = self.spoil();
                    (
                        found.map_or(input.len(), |i| i + 1),
                        Event::Refused(Problem {
                            line: self.lines,
                            reason: format!("a command line longer than {MAX_COMMAND_LINE} bytes"),
                            spoilt,
                        }),
                    )
                }
            },
            State::Commands => self.command(input, eof),
            State::Data { keep } => self.data(input, eof, keep),
        }
    }

    fn spoil(&mut self) -> Option<Envelope> {
        self.spoilt = self.tx.is_some();
        self.tx.take()
    }

    fn command<'a>(&mut self, input: &'a [u8], eof: bool) -> (usize, Event<'a>) {
        let (line, used) = match memchr(input) {
            Some(i) if i < MAX_COMMAND_LINE => (&input[..i], i + 1),
            None if input.len() < MAX_COMMAND_LINE && !eof => return (0, Event::NeedMore),
            None if input.len() < MAX_COMMAND_LINE => {
                let line = input.strip_suffix(b"\r").unwrap_or(input);
                if line.is_empty() || line.eq_ignore_ascii_case(b"QUIT") {
                    // A last line without its newline: only QUIT is whole.
                    self.state = State::Done;
                    return (input.len(), self.end_of_input());
                }
                self.state = State::Done;
                return (input.len(), Event::Truncated(self.tx.take()));
            }
            _ => {
                self.state = State::Overlong;
                return (MAX_COMMAND_LINE, Event::Nothing);
            }
        };
        self.lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (used, self.command_line(line))
    }

    fn end_of_input(&mut self) -> Event<'static> {
        self.state = State::Done;
        match self.tx.take() {
            Some(env) => Event::Truncated(Some(env)),
            None => Event::Finished,
        }
    }

    /// RFC 5321 §4.1.1 commands, as Exim's `-bS` reads them.
    fn command_line<'a>(&mut self, line: &[u8]) -> Event<'a> {
        let n = self.lines;
        let word: Vec<u8> = line
            .iter()
            .take_while(|b| !b.is_ascii_whitespace() && **b != b':')
            .map(u8::to_ascii_uppercase)
            .collect();
        let refuse = |this: &mut Self, reason: String| {
            let spoilt = this.spoil();
            Event::Refused(Problem {
                line: n,
                reason,
                spoilt,
            })
        };
        if let Some(verb) = path::verb(line) {
            return match verb {
                Verb::Mail => {
                    if self.tx.is_some() {
                        return refuse(
                            self,
                            "MAIL inside an open transaction (RSET or DATA missing)".into(),
                        );
                    }
                    match path::parse_batch(Verb::Mail, line) {
                        Ok(c) => {
                            self.spoilt = false;
                            self.tx = Some(Envelope {
                                line: n,
                                mail_from: c.address,
                                rcpts: Vec::new(),
                                bad_rcpts: Vec::new(),
                            });
                            Event::Nothing
                        }
                        Err(e) => {
                            self.tx = None;
                            self.spoilt = true;
                            Event::Refused(Problem {
                                line: n,
                                reason: format!("bad MAIL command: {}", path_error(&e)),
                                spoilt: None,
                            })
                        }
                    }
                }
                Verb::Rcpt => {
                    if self.spoilt {
                        return Event::Nothing;
                    }
                    let Some(tx) = self.tx.as_mut() else {
                        return refuse(self, "RCPT before MAIL".into());
                    };
                    // Good and bad recipients count alike: 4M lines of
                    // `RCPT TO:<@>` once made 3.5 GB and a 648 MB bounce.
                    // Past the limit the transaction is spoilt (its body
                    // skipped) and its sender told once, with at most
                    // MAX_RECIPIENTS lines listed.
                    if tx.rcpts.len() + tx.bad_rcpts.len() >= MAX_RECIPIENTS {
                        let spoilt = self.tx.take();
                        self.spoilt = true;
                        return Event::Refused(Problem {
                            line: n,
                            reason: format!(
                                "more than {MAX_RECIPIENTS} recipients in one message: split it"
                            ),
                            spoilt,
                        });
                    }
                    let written = String::from_utf8_lossy(line).chars().take(200).collect();
                    match path::parse_batch(Verb::Rcpt, line) {
                        Ok(c) => tx.rcpts.push(c.address),
                        Err(e) => tx.bad_rcpts.push((written, path_error(&e))),
                    }
                    Event::Nothing
                }
            };
        }
        match word.as_slice() {
            b"HELO" | b"EHLO" | b"LHLO" | b"RSET" => {
                self.tx = None;
                self.spoilt = false;
                Event::Nothing
            }
            b"NOOP" | b"VRFY" | b"EXPN" | b"HELP" | b"" => Event::Nothing,
            b"QUIT" => {
                self.state = State::Done;
                match self.tx.take() {
                    Some(env) => Event::Refused(Problem {
                        line: n,
                        reason: "QUIT inside a transaction (DATA missing)".into(),
                        spoilt: Some(env),
                    }),
                    None => Event::Finished,
                }
            }
            b"DATA" => {
                self.line_start = true;
                match self.tx.take() {
                    Some(env) if !env.rcpts.is_empty() && !self.spoilt => {
                        self.state = State::Data { keep: true };
                        self.in_data = Some(env.clone());
                        Event::Begin(env)
                    }
                    Some(env) => {
                        self.state = State::Data { keep: false };
                        if env.bad_rcpts.is_empty() {
                            Event::Refused(Problem {
                                line: n,
                                reason: "DATA without any recipient".into(),
                                spoilt: Some(env),
                            })
                        } else {
                            // Every recipient was bad: the caller bounces each.
                            Event::Refused(Problem {
                                line: n,
                                reason: "no usable recipient".into(),
                                spoilt: Some(env),
                            })
                        }
                    }
                    None => {
                        self.state = State::Data { keep: false };
                        if self.spoilt {
                            self.spoilt = false;
                            Event::Nothing
                        } else {
                            Event::Refused(Problem {
                                line: n,
                                reason: "DATA before MAIL".into(),
                                spoilt: None,
                            })
                        }
                    }
                }
            }
            _ if self.spoilt => Event::Nothing,
            _ => {
                let shown: String = String::from_utf8_lossy(line).chars().take(60).collect();
                refuse(self, format!("unknown command `{shown}`"))
            }
        }
    }

    /// RFC 5321 §4.5.2: a line of a single "." ends the data; otherwise a
    /// leading "." was doubled by the writer and one is removed.
    fn data<'a>(&mut self, input: &'a [u8], eof: bool, keep: bool) -> (usize, Event<'a>) {
        if input.is_empty() {
            if !eof {
                return (0, Event::NeedMore);
            }
            // The input ended inside the data: no "." line came.
            self.state = State::Done;
            return match self.in_data.take() {
                Some(env) if keep => (0, Event::Truncated(Some(env))),
                _ => (0, Event::Finished),
            };
        }
        if self.line_start {
            // Enough of the line to tell ".", "..text" and "text" apart.
            let nl = memchr(&input[..input.len().min(3)]);
            if nl.is_none() && input.len() < 3 && !eof {
                return (0, Event::NeedMore);
            }
            let line_end = nl.map_or(input.len(), |i| i + 1);
            let line = &input[..line_end];
            let bare = line
                .strip_suffix(b"\n")
                .map(|c| c.strip_suffix(b"\r").unwrap_or(c))
                .unwrap_or(line);
            // A "." with no newline at the very end also ends the data.
            if bare == b"." {
                self.lines += u64::from(nl.is_some());
                self.state = State::Commands;
                self.in_data = None;
                return (line_end, if keep { Event::End } else { Event::Nothing });
            }
            if input[0] == b'.' {
                self.line_start = false;
                return (1, Event::Nothing);
            }
        }
        let (end, complete) = match memchr(input) {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        self.lines += u64::from(complete);
        self.line_start = complete;
        let piece = &input[..end];
        (
            end,
            if keep {
                Event::Body(piece)
            } else {
                Event::Nothing
            },
        )
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn path_error(e: &path::PathError) -> String {
    match e {
        path::PathError::Syntax(s) => (*s).to_string(),
        path::PathError::Unsupported(p) => format!("unsupported parameter {p}"),
        path::PathError::BadValue(p) => format!("bad value for {p}"),
    }
}

/// Write one message as batch SMTP: MAIL, RCPT…, DATA, the dot-stuffed
/// body with CRLF line ends, and the closing ".". The caller writes QUIT
/// after the last message ([`QUIT`]).
pub fn write_message<W: std::io::Write>(
    out: &mut W,
    mail_from: &str,
    rcpts: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let mut params = String::new();
    if body.iter().any(|b| *b >= 0x80) {
        params.push_str(" BODY=8BITMIME");
    }
    if !mail_from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii()) {
        params.push_str(" SMTPUTF8");
    }
    write!(out, "MAIL FROM:<{mail_from}>{params}\r\n")?;
    for r in rcpts {
        write!(out, "RCPT TO:<{r}>\r\n")?;
    }
    out.write_all(b"DATA\r\n")?;
    let mut rest = body;
    while !rest.is_empty() {
        let end = memchr(rest).map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        if line.first() == Some(&b'.') {
            out.write_all(b".")?;
        }
        let bare = line
            .strip_suffix(b"\n")
            .map(|c| c.strip_suffix(b"\r").unwrap_or(c))
            .unwrap_or(line);
        out.write_all(bare)?;
        out.write_all(b"\r\n")?;
    }
    out.write_all(b".\r\n")
}

/// The last line of a batch.
pub const QUIT: &[u8] = b"QUIT\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// What a batch decodes to.
    #[derive(Debug, Default, PartialEq)]
    struct Out {
        messages: Vec<(Envelope, Vec<u8>)>,
        problems: Vec<Problem>,
        truncated: Option<Option<Envelope>>,
    }

    /// Decode `batch` fed `step` bytes at a time.
    fn decode(batch: &[u8], step: usize) -> Out {
        let mut d = Decoder::new();
        let mut out = Out::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut current: Option<(Envelope, Vec<u8>)> = None;
        for _ in 0..10 * batch.len() + 100 {
            let eof = fed == batch.len();
            let (n, ev) = d.next(&buf, eof);
            let mut need = false;
            let mut stop = false;
            match ev {
                Event::NeedMore => need = true,
                Event::Nothing => {}
                Event::Begin(e) => current = Some((e, Vec::new())),
                Event::Body(b) => current.as_mut().expect("body after begin").1.extend(b),
                Event::End => out.messages.push(current.take().expect("end after begin")),
                Event::Refused(p) => out.problems.push(p),
                Event::Finished => stop = true,
                Event::Truncated(e) => {
                    out.truncated = Some(e);
                    stop = true
                }
            }
            buf.drain(..n);
            if stop {
                return out;
            }
            if need {
                assert!(!eof, "NeedMore at the end of the input");
                let take = step.min(batch.len() - fed);
                buf.extend_from_slice(&batch[fed..fed + take]);
                fed += take;
            } else {
                assert!(n > 0, "an event that used no bytes");
            }
        }
        panic!("decoder did not finish");
    }

    fn every_split(batch: &[u8]) -> Out {
        let whole = decode(batch, batch.len().max(1));
        for step in [1, 2, 3, 5, 7, 64] {
            assert_eq!(decode(batch, step), whole, "fed {step} bytes at a time");
        }
        whole
    }

    fn env(line: u64, from: &str, rcpts: &[&str]) -> Envelope {
        Envelope {
            line,
            mail_from: from.into(),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
            bad_rcpts: Vec::new(),
        }
    }

    #[test]
    fn exim_style_lf_batch_with_two_messages_and_dot_stuffing() {
        let batch = b"MAIL FROM:<e@exim.example>\nRCPT TO:<a@hub.example>\nRCPT TO:<b@hub.example>\nDATA\nSubject: one\n\n..leading dot\nmiddle . dot\n.\nHELO x\nMAIL FROM:<>\nRCPT TO:<a@hub.example>\nDATA\r\nSubject: two\r\n\r\nbody\r\n.\r\nQUIT\n";
        let out = every_split(batch);
        assert_eq!(out.problems, vec![]);
        assert_eq!(out.truncated, None);
        assert_eq!(
            out.messages,
            vec![
                (
                    env(1, "e@exim.example", &["a@hub.example", "b@hub.example"]),
                    b"Subject: one\n\n.leading dot\nmiddle . dot\n".to_vec()
                ),
                (
                    env(11, "", &["a@hub.example"]),
                    b"Subject: two\r\n\r\nbody\r\n".to_vec()
                ),
            ]
        );
    }

    #[test]
    fn last_line_without_newline_and_no_quit() {
        let out =
            every_split(b"MAIL FROM:<x@y.example>\r\nRCPT TO:<a@b.example>\r\nDATA\r\nhi\r\n.");
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.messages[0].1, b"hi\r\n");
        assert_eq!(out.truncated, None);
    }

    #[test]
    fn a_batch_cut_short_is_truncated_not_delivered() {
        let full = b"MAIL FROM:<x@y.example>\nRCPT TO:<a@b.example>\nDATA\nfirst\n.\nMAIL FROM:<x@y.example>\nRCPT TO:<a@b.example>\nDATA\nsecond message\nmore\n.\n";
        let first_end = full.windows(3).position(|w| w == b"\n.\n").unwrap() + 3;
        for cut in 0..full.len() {
            let out = every_split(&full[..cut]);
            // "." without its newline at the very end still ends the data.
            let done = usize::from(cut >= first_end - 1) + usize::from(cut >= full.len() - 1);
            assert_eq!(out.messages.len(), done, "cut at {cut}");
            assert_eq!(out.problems, vec![], "cut at {cut}");
            // Every cut inside a transaction or a line is reported.
            let inside =
                (cut > 0 && cut < first_end - 1) || (cut > first_end && cut < full.len() - 1);
            assert_eq!(out.truncated.is_some(), inside, "cut at {cut}");
        }
        assert_eq!(every_split(full).messages.len(), 2);
    }

    #[test]
    fn bad_commands_spoil_only_their_transaction() {
        let batch = b"MAIL FROM:<x@y.example>\nRCPT TO:<a@b.example>\nXYZZY\nRCPT TO:<c@b.example>\nDATA\nMAIL FROM:<not a command>\n.\nMAIL FROM:<z@y.example>\nRCPT TO:<bad\nRCPT TO:<ok@b.example>\nDATA\nkept\n.\nDATA\nlost body\n.\nRCPT TO:<q@b.example>\n";
        let out = every_split(batch);
        assert_eq!(out.messages.len(), 1);
        let (e, body) = &out.messages[0];
        assert_eq!(e.rcpts, vec!["ok@b.example".to_string()]);
        assert_eq!(e.bad_rcpts.len(), 1);
        assert!(e.bad_rcpts[0].0.contains("RCPT TO:<bad"));
        assert_eq!(body, b"kept\n");
        let reasons: Vec<(u64, &str, Option<&str>)> = out
            .problems
            .iter()
            .map(|p| {
                (
                    p.line,
                    p.reason.as_str(),
                    p.spoilt.as_ref().map(|e| e.mail_from.as_str()),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                (3, "unknown command `XYZZY`", Some("x@y.example")),
                (14, "DATA before MAIL", None),
                (17, "RCPT before MAIL", None),
            ]
        );
    }

    #[test]
    fn an_endless_command_line_is_refused_and_bounded() {
        let mut batch = b"MAIL FROM:<x@y.example>\n".to_vec();
        batch.extend(std::iter::repeat_n(b'A', 3 * MAX_COMMAND_LINE));
        batch.extend(b"\nMAIL FROM:<x@y.example>\nRCPT TO:<a@b.example>\nDATA\nok\n.\n");
        let out = decode(&batch, 1000);
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.problems.len(), 1);
        assert!(out.problems[0].reason.contains("longer than"));
        assert_eq!(out.problems[0].spoilt.as_ref().unwrap().line, 1);
    }

    /// Issue 18, point 9: 4M lines of `RCPT TO:<@>` took 3.5 GB and
    /// queued a 648 MB bounce. Bad recipients count toward the limit;
    /// past it the transaction is spoilt once, its body skipped.
    #[test]
    fn endless_recipients_spoil_their_transaction_once() {
        let mut batch = b"MAIL FROM:<x@y.example>\n".to_vec();
        for i in 0..5 * MAX_RECIPIENTS {
            if i % 2 == 0 {
                batch.extend(b"RCPT TO:<@>\n");
            } else {
                batch.extend(b"RCPT TO:<a@b.example>\n");
            }
        }
        batch.extend(
            b"DATA\nQUIT\n.\nMAIL FROM:<z@y.example>\nRCPT TO:<a@b.example>\nDATA\nok\n.\n",
        );
        let out = decode(&batch, 1 << 16);
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems.len());
        let p = &out.problems[0];
        assert!(
            p.reason.contains("more than 1000 recipients"),
            "{}",
            p.reason
        );
        let spoilt = p.spoilt.as_ref().expect("its sender is told");
        assert_eq!(spoilt.rcpts.len() + spoilt.bad_rcpts.len(), MAX_RECIPIENTS);
        // The next transaction is read as usual; the spoilt body is not
        // taken for commands.
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.messages[0].0.mail_from, "z@y.example");
    }

    #[test]
    fn long_body_lines_stream_through() {
        let mut batch = b"MAIL FROM:<x@y.example>\nRCPT TO:<a@b.example>\nDATA\n".to_vec();
        let line = vec![b'x'; 100_000];
        batch.extend(&line);
        batch.extend(b"\n.\n");
        let out = decode(&batch, 4096);
        assert_eq!(out.messages[0].1.len(), line.len() + 1);
    }

    #[test]
    fn written_batches_read_back_byte_for_byte() {
        let bodies: [&[u8]; 4] = [
            b"Subject: a\r\n\r\n.\r\n..\r\n.x\r\nend\r\n",
            b"Subject: b\r\n\r\nno final newline",
            b"Subject: c\r\n\r\n8-bit \xc3\xa9\r\n",
            b"",
        ];
        let mut batch = Vec::new();
        for b in bodies {
            write_message(&mut batch, "s@x.example", &["r@y.example".into()], b).unwrap();
        }
        batch.extend(QUIT);
        let out = every_split(&batch);
        assert_eq!(out.problems, vec![]);
        let got: Vec<Vec<u8>> = out.messages.into_iter().map(|(_, b)| b).collect();
        assert_eq!(got[0], bodies[0]);
        assert_eq!(got[1], b"Subject: b\r\n\r\nno final newline\r\n");
        assert_eq!(got[2], bodies[2]);
        assert_eq!(got[3], b"");
        assert!(String::from_utf8_lossy(&batch).contains("BODY=8BITMIME"));
    }
}
