//! One radio session after the handshake: a reliable, ordered stream of
//! records each way over a half-duplex, lossy channel.
//!
//! Only the side holding the turn transmits. It sends a burst — every
//! segment the other side has not acknowledged, then new ones while the
//! window and the burst's air time allow — and ends it with a `TURN` frame
//! that acknowledges what it received (cumulative number plus a 64-bit
//! bitmap) and hands the channel over. A side that hears nothing within a
//! time computed from the air time of a full frame sends its `TURN` again
//! (a poll), backing off, and gives up after [`Tuning::max_silence`]. A
//! side with nothing to say holds the turn a moment before passing it, so
//! two idle sides do not chatter. When both streams are complete and
//! acknowledged, the side that sees it says `BYE`.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use snow::StatelessTransportState;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::frame::{self, Frame, Kind, TAG, Turn, turn};
use crate::domain::lora::Received;
use crate::domain::units::Airtime;

/// What the session needs from the radio.
pub trait Air {
    /// The longest frame the modem takes.
    fn mtu(&self) -> usize;
    /// Air time of a frame of `len` bytes.
    fn airtime(&self, len: usize) -> Airtime;
    /// Air time left in this hour's budget, milliseconds.
    fn budget_ms(&mut self) -> u32;
    /// How long until `cost` of air may be spent (zero: now, or never
    /// whole — then frames go one by one as the budget allows).
    fn wait_for(&mut self, cost: Airtime) -> Duration;
    /// The most air any stretch of time allows (the pacing window's share).
    fn limit(&self) -> Airtime;
    /// Sends a burst; returns once it has left (waiting for budget if the
    /// ledger says so).
    fn send(&mut self, frames: Vec<Vec<u8>>) -> impl Future<Output = Result<(), AirError>> + Send;
    /// The next frame heard; cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Result<Received, AirError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum AirError {
    #[error("{0}")]
    Modem(#[from] super::modem::ModemFailure),
    #[error("could not record air time: {0}")]
    Ledger(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Air(#[from] AirError),
    #[error("the other hub went silent for {0:?}")]
    Silent(Duration),
    #[error("the other hub left the session before it was complete")]
    PeerLeft,
    #[error("the other hub sent a record of {0} bytes, more than allowed")]
    RecordTooLarge(usize),
    #[error("the other hub sent a record that does not unpack: {0}")]
    BadRecord(String),
    #[error("the session ran out of segment numbers")]
    Exhausted,
    #[error("a new hello from the other hub interrupted the session")]
    Interrupted(Received),
}

/// The knobs of the protocol.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Segments in flight, unacknowledged (the bitmap covers 64).
    pub window: u32,
    /// Frames per burst.
    pub burst_frames: usize,
    /// Air time per burst: long bursts starve the other direction and
    /// lose more to one bad moment.
    pub burst_air: Duration,
    /// The longest an idle side holds the turn before passing it.
    pub idle_hold: Duration,
    /// Silence after which the session is abandoned (it resumes later).
    pub max_silence: Duration,
    /// Time from the end of one side's burst to the start of the other's
    /// (serial, CSMA and processing), beyond air time.
    pub turnaround: Duration,
    /// The other side reads folded records (its hello says so).
    pub fold: bool,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            window: 64,
            burst_frames: 16,
            burst_air: Duration::from_secs(8),
            idle_hold: Duration::from_secs(3),
            max_silence: Duration::from_secs(900),
            turnaround: Duration::from_millis(1500),
            fold: true,
        }
    }
}

/// Records are length-prefixed in the stream; a peer cannot make us
/// buffer more than this for one record (item data comes in small
/// records; inventories are pieces of 1000 entries).
pub const MAX_RECORD: usize = 256 << 10;

/// What a session did, for the history and the radio page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub frames_sent: u64,
    pub frames_heard: u64,
    pub resent: u64,
    pub polls: u64,
    pub airtime: Airtime,
    /// Time spent holding the turn until the duty cycle allowed a send.
    pub waited: Duration,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// The final `BYE` frame, kept so a late poll can be answered.
    pub bye: Option<Vec<u8>>,
}

struct Out {
    /// Records may be folded for the air ([`Tuning::fold`]).
    fold: bool,
    pending: VecDeque<u8>,
    open: bool,
    next_seq: u32,
    unacked: BTreeMap<u32, Vec<u8>>,
}

struct In {
    cum: u32,
    ooo: BTreeMap<u32, Vec<u8>>,
    buf: Vec<u8>,
    fin: Option<u32>,
}

impl State {
    fn new(tuning: &Tuning, initiator: bool) -> State {
        State {
            o: Out {
                fold: tuning.fold,
                pending: VecDeque::new(),
                open: true,
                next_seq: 0,
                unacked: BTreeMap::new(),
            },
            i: In {
                cum: 0,
                ooo: BTreeMap::new(),
                buf: Vec::new(),
                fin: None,
            },
            outcome: Outcome::default(),
            my_turn: initiator,
            peer_turn: None,
            peer_idle: false,
            last_heard: Instant::now(),
            last_signal: (0, 0),
            peer_hold_until: Instant::now(),
            turn_no: 0,
        }
    }
}

/// What every step of one session shares: its keys and tag, the knobs,
/// and where the other side's records go.
#[derive(Clone, Copy)]
struct Link<'a> {
    noise: &'a StatelessTransportState,
    session: u16,
    tuning: &'a Tuning,
    /// Record bytes one segment frame carries.
    seg_payload: usize,
    inc: &'a mpsc::Sender<Vec<u8>>,
    same_peer: &'a (dyn Fn(&Frame) -> bool + Send + Sync),
}

/// Runs the session until both streams are complete, or it fails.
/// `out` yields this side's records (closed when it has no more); `inc`
/// takes the other side's.
#[allow(clippy::too_many_arguments)]
pub async fn run<A: Air>(
    air: &mut A,
    noise: &StatelessTransportState,
    session: u16,
    initiator: bool,
    mut out: mpsc::Receiver<Vec<u8>>,
    inc: mpsc::Sender<Vec<u8>>,
    tuning: &Tuning,
    seed: u64,
    same_peer: &(dyn Fn(&Frame) -> bool + Send + Sync),
) -> Result<Outcome, SessionError> {
    let mtu = air.mtu();
    let seg_payload = mtu - frame::HEADER - TAG;
    let full_frame = air.airtime(mtu).as_duration();
    let frame_gap = full_frame * 2 + tuning.turnaround;
    let reply_wait = full_frame * 2 + tuning.turnaround * 2 + tuning.idle_hold;
    let mut jitter = seed | 1;
    let mut rand_ms = |max: u64| {
        // xorshift64: timing jitter only.
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        jitter % max.max(1)
    };

    let mut st = State::new(tuning, initiator);
    let link = Link {
        noise,
        session,
        tuning,
        seg_payload,
        inc: &inc,
        same_peer,
    };
    let mut idle_hold = Duration::from_millis(300);
    let mut deadline = Instant::now() + reply_wait;
    let mut polls_in_a_row = 0u32;

    tracing::debug!(session, initiator, "radio session starts");
    loop {
        if st.my_turn {
            // Wait, listening, until the duty cycle allows a frame and a
            // turn; the other side's polls meanwhile only update its
            // acknowledgements.
            let waited = listen_until_ready(&mut st, air, &mut out, &link).await?;
            if let Some(end) = waited {
                return end;
            }
            // Gather what the upper layer has ready; hold briefly when idle.
            fill(&mut st.o, &mut out);
            let nothing = st.o.pending.is_empty() && st.o.unacked.is_empty();
            let done_here = !st.o.open && nothing;
            let done_there = st.i.fin == Some(st.i.cum);
            if done_here && done_there {
                return say_bye(air, &mut st, &link, reply_wait * 2).await;
            }
            if nothing && st.o.open {
                hold_while_idle(&mut st, &mut out, &mut idle_hold, tuning).await;
            }
            // The burst: first what the other side still lacks, then new.
            let burst = build_burst(&mut st, air, &mut out, &link, full_frame)?;
            if !burst.is_empty() {
                idle_hold = Duration::from_millis(300);
            }
            send_burst(&mut st, air, burst, &link).await?;
            st.my_turn = false;
            polls_in_a_row = 0;
            deadline = Instant::now()
                + reply_wait
                + st.peer_hold_until.saturating_duration_since(Instant::now())
                + Duration::from_millis(rand_ms(500));
            continue;
        }

        // Their turn: listen.
        tokio::select! {
            r = air.recv() => {
                let kind = Frame::decode(&r.as_ref().map(|r| r.data.clone()).unwrap_or_default()).map(|f| f.kind);
                if let Some(end) = st.on_frame(r?, &link).await? {
                    return end;
                }
                if kind == Some(Kind::Seg) {
                    deadline = Instant::now() + frame_gap;
                }
            }
            _ = sleep_until(deadline) => {
                let silent = st.last_heard.elapsed();
                // Both streams complete and acknowledged: only the other
                // side's BYE is missing (lost). Leave in good order.
                let closing = !st.o.open && st.o.pending.is_empty() && st.i.fin == Some(st.i.cum);
                if closing && st.o.unacked.is_empty() {
                    // Say so (the other side may lack our FIN), and keep
                    // the goodbye for late polls.
                    return say_bye(air, &mut st, &link, reply_wait * 2).await;
                }
                if silent >= tuning.max_silence {
                    return Err(SessionError::Silent(silent));
                }
                tracing::debug!(session, silent = ?silent, "radio poll");
                // Poll: say our turn again (it may be the part that was lost).
                polls_in_a_row += 1;
                st.outcome.polls += 1;
                // A poll is a turn with an empty burst.
                send_burst(&mut st, air, Vec::new(), &link).await?;
                let backoff = reply_wait * 2u32.pow(polls_in_a_row.min(5));
                deadline = Instant::now()
                    + backoff.min(Duration::from_secs(120))
                    + st.peer_hold_until.saturating_duration_since(Instant::now())
                    + Duration::from_millis(rand_ms(1000));
            }
        }
    }
}

/// Nothing to send yet: wait a moment for the upper layer (longer, up to
/// the tuning's idle hold, while the other side is idle too).
async fn hold_while_idle(
    st: &mut State,
    out: &mut mpsc::Receiver<Vec<u8>>,
    idle_hold: &mut Duration,
    tuning: &Tuning,
) {
    let hold = if st.peer_idle {
        *idle_hold
    } else {
        Duration::from_millis(300)
    };
    tokio::select! {
        r = out.recv() => match r {
            Some(rec) => push_record(&mut st.o, &rec),
            None => st.o.open = false,
        },
        _ = tokio::time::sleep(hold) => {
            if st.peer_idle {
                *idle_hold = (*idle_hold * 2).min(tuning.idle_hold);
            }
        }
    }
    fill(&mut st.o, out);
}

/// Send a burst with this side's turn at its end: what it acknowledges,
/// whether it is idle or finished, and how long its duty cycle will keep
/// it quiet afterwards (so the other side does not poll meanwhile). An
/// empty burst is a poll: the turn said again with nothing new (the other
/// side's answer, or our last turn, may have been lost).
async fn send_burst<A: Air>(
    st: &mut State,
    air: &mut A,
    mut burst: Vec<Vec<u8>>,
    link: &Link<'_>,
) -> Result<(), SessionError> {
    let mut flags = 0;
    if burst.is_empty() {
        flags |= turn::IDLE;
    }
    if !st.o.open && st.o.pending.is_empty() {
        flags |= turn::FIN;
    }
    let this: Airtime = burst.iter().map(|f| air.airtime(f.len())).sum();
    let hold = air.wait_for(this + burst_need(&st.o, air, link.tuning, link.seg_payload));
    let t = make_turn(&st.o, &st.i, flags, air.budget_ms(), hold, st.last_signal);
    burst.push(seal_turn(link.noise, link.session, &mut st.turn_no, &t)?);
    st.outcome.frames_sent += burst.len() as u64;
    st.outcome.airtime += burst.iter().map(|f| air.airtime(f.len())).sum();
    air.send(burst).await?;
    Ok(())
}

/// Listen until the duty cycle allows this side's burst and turn, taking
/// what is heard meanwhile, then catch up on what arrived. `Some`: the
/// session ended while listening.
async fn listen_until_ready<A: Air>(
    st: &mut State,
    air: &mut A,
    out: &mut mpsc::Receiver<Vec<u8>>,
    link: &Link<'_>,
) -> Result<Option<Result<Outcome, SessionError>>, SessionError> {
    let Link {
        tuning,
        seg_payload,
        ..
    } = *link;
    fill(&mut st.o, out);
    let need = burst_need(&st.o, air, tuning, seg_payload);
    let wait = air.wait_for(need);
    if !wait.is_zero() {
        st.outcome.waited += wait;
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                r = air.recv() => {
                    if let Some(end) = st.on_frame(r?, link).await? {
                        return Ok(Some(end));
                    }
                }
                _ = sleep_until(until) => break,
            }
        }
    }
    // Catch up on what was heard meanwhile, so the burst answers
    // the latest state.
    while let Some(r) = air.recv().now_or_never() {
        if let Some(end) = st.on_frame(r?, link).await? {
            return Ok(Some(end));
        }
    }
    Ok(None)
}

/// The burst of one turn: first the frames the other side still lacks,
/// then new segments of what is pending, within the burst's frames, the
/// window and the air the duty cycle leaves.
fn build_burst<A: Air>(
    st: &mut State,
    air: &mut A,
    out: &mut mpsc::Receiver<Vec<u8>>,
    link: &Link<'_>,
    full_frame: Duration,
) -> Result<Vec<Vec<u8>>, SessionError> {
    let mut burst: Vec<Vec<u8>> = Vec::new();
    let mut burst_air = Duration::ZERO;
    let budget = Duration::from_millis(u64::from(air.budget_ms()));
    let turn_air = air
        .airtime(frame::HEADER + frame::TURN_LEN + TAG)
        .as_duration();
    let room = link.tuning.burst_air.min(budget.saturating_sub(turn_air));
    for f in st.o.unacked.values() {
        if burst.len() >= link.tuning.burst_frames
            || (!burst.is_empty() && burst_air + full_frame > room)
        {
            break;
        }
        burst_air += air.airtime(f.len()).as_duration();
        burst.push(f.clone());
        st.outcome.resent += 1;
    }
    while !st.o.pending.is_empty()
        && burst.len() < link.tuning.burst_frames
        && (st.o.unacked.len() as u32) < link.tuning.window
        && (burst.is_empty() || burst_air + full_frame <= room)
    {
        if st.o.next_seq > frame::MAX_COUNTER {
            return Err(SessionError::Exhausted);
        }
        let n = link.seg_payload.min(st.o.pending.len());
        let plain: Vec<u8> = st.o.pending.drain(..n).collect();
        let f = seal(
            link.noise,
            Kind::Seg,
            0,
            link.session,
            st.o.next_seq,
            &plain,
        )?;
        st.outcome.bytes_out += n as u64;
        burst_air += air.airtime(f.len()).as_duration();
        st.o.unacked.insert(st.o.next_seq, f.clone());
        st.o.next_seq += 1;
        burst.push(f);
        if st.o.pending.is_empty() {
            fill(&mut st.o, out);
        }
    }
    Ok(burst)
}

struct State {
    o: Out,
    i: In,
    outcome: Outcome,
    my_turn: bool,
    peer_turn: Option<u32>,
    peer_idle: bool,
    last_heard: Instant,
    last_signal: (i16, i8),
    /// The other side said its duty cycle keeps it quiet until then.
    peer_hold_until: Instant,
    /// Turns sent so far (each TURN's counter).
    turn_no: u32,
}

impl State {
    /// One frame heard. `Some` ends the session.
    async fn on_frame(
        &mut self,
        r: Received,
        link: &Link<'_>,
    ) -> Result<Option<Result<Outcome, SessionError>>, SessionError> {
        let Link {
            noise,
            session,
            tuning,
            inc,
            same_peer,
            ..
        } = *link;
        let Some(f) = Frame::decode(&r.data) else {
            return Ok(None);
        };
        // A new hello from the same hub: it restarted (a replugged modem,
        // a reboot) and this session is over. Hellos from others wait
        // until this session ends.
        if f.kind == Kind::Hello {
            tracing::debug!(session, theirs = f.session, "radio hello during a session");
            if f.flags & frame::HELLO_ANSWER == 0 && same_peer(&f) {
                return Ok(Some(Err(SessionError::Interrupted(r))));
            }
            return Ok(None);
        }
        if f.session != session {
            return Ok(None);
        }
        let Some(plain) = open(noise, &f) else {
            return Ok(None);
        };
        self.outcome.frames_heard += 1;
        self.last_heard = Instant::now();
        self.last_signal = (r.rssi, (r.snr * 4.0).round().clamp(-128.0, 127.0) as i8);
        match f.kind {
            Kind::Seg => {
                self.outcome.bytes_in += plain.len() as u64;
                take_segment(&mut self.i, f.counter, plain, tuning.window);
                while let Some(rec) = next_record(&mut self.i.buf)? {
                    if inc.send(rec).await.is_err() {
                        // The upper layer stopped: finish what we owe.
                        self.o.open = false;
                    }
                }
            }
            Kind::Turn => {
                if self.peer_turn.is_some_and(|p| f.counter <= p) {
                    return Ok(None);
                }
                let Some(t) = Turn::decode(&plain) else {
                    return Ok(None);
                };
                self.peer_turn = Some(f.counter);
                self.o.unacked.retain(|seq, _| !t.acks(*seq));
                if t.flags & turn::FIN != 0 {
                    self.i.fin = Some(t.fin);
                }
                self.peer_idle = t.flags & turn::IDLE != 0;
                // Bounded: a peer cannot silence us for more than an hour.
                let hold =
                    Duration::from_millis(u64::from(t.hold_ms)).min(Duration::from_secs(3600));
                self.peer_hold_until = Instant::now() + hold;
                // Its silence while it waits for air time is not silence.
                self.last_heard = self.last_heard.max(self.peer_hold_until);
                if t.flags & turn::BYE != 0 {
                    let complete = self.o.unacked.is_empty()
                        && self.o.pending.is_empty()
                        && self.i.fin == Some(self.i.cum);
                    return Ok(Some(if complete {
                        Ok(std::mem::take(&mut self.outcome))
                    } else {
                        Err(SessionError::PeerLeft)
                    }));
                }
                self.my_turn = true;
            }
            Kind::Hello => {}
        }
        Ok(None)
    }
}

/// Ends the session: a TURN with BYE and FIN (acknowledging everything
/// heard), repeated to polls for a moment, and kept for later ones.
async fn say_bye<A: Air>(
    air: &mut A,
    st: &mut State,
    link: &Link<'_>,
    quiet: Duration,
) -> Result<Outcome, SessionError> {
    let Link { noise, session, .. } = *link;
    let t = make_turn(
        &st.o,
        &st.i,
        turn::BYE | turn::FIN | turn::IDLE,
        air.budget_ms(),
        Duration::ZERO,
        st.last_signal,
    );
    let f = seal_turn(noise, session, &mut st.turn_no, &t)?;
    st.outcome.airtime += air.airtime(f.len());
    st.outcome.frames_sent += 1;
    air.send(vec![f.clone()]).await?;
    linger(air, &f, session, quiet, &mut st.outcome).await?;
    st.outcome.bye = Some(f);
    Ok(std::mem::take(&mut st.outcome))
}

/// After our BYE: a poll from the other side means it was lost, so it
/// goes again (a few times), until the other side is quiet for `quiet`.
/// A hello ends the wait (the service's own lingering answers later polls).
async fn linger<A: Air>(
    air: &mut A,
    bye: &[u8],
    session: u16,
    quiet: Duration,
    outcome: &mut Outcome,
) -> Result<(), SessionError> {
    let mut left = 3;
    let mut until = Instant::now() + quiet;
    while left > 0 {
        let r = tokio::select! {
            r = air.recv() => r?,
            _ = sleep_until(until) => return Ok(()),
        };
        match Frame::decode(&r.data) {
            Some(f) if f.kind == Kind::Turn && f.session == session => {
                left -= 1;
                outcome.frames_sent += 1;
                outcome.airtime += air.airtime(bye.len());
                air.send(vec![bye.to_vec()]).await?;
                until = Instant::now() + quiet;
            }
            Some(f) if f.kind == Kind::Hello => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

/// Air time the next burst needs: what is unacknowledged or pending, as
/// full frames up to the burst's limits, and the turn frame; capped so a
/// strict band can still be served frame by frame.
fn burst_need<A: Air>(o: &Out, air: &A, tuning: &Tuning, seg_payload: usize) -> Airtime {
    let mtu = air.mtu();
    let full = air.airtime(mtu);
    let turn = air.airtime(frame::HEADER + frame::TURN_LEN + TAG);
    let frames = (o.unacked.len() + o.pending.len().div_ceil(seg_payload))
        .min(tuning.burst_frames)
        .min((tuning.burst_air.as_micros() as u64 / full.0.max(1)).max(1) as usize);
    let need = Airtime(full.0 * frames as u64) + turn;
    need.min(Airtime(air.limit().0 / 2).max(full + turn))
}

fn fill(o: &mut Out, out: &mut mpsc::Receiver<Vec<u8>>) {
    // Keep a few segments' worth ready; the rest waits in the channel.
    while o.open && o.pending.len() < 64 << 10 {
        match out.try_recv() {
            Ok(rec) => push_record(o, &rec),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => o.open = false,
        }
    }
}

/// Queues a record: compressed for the air, then length-prefixed.
fn push_record(o: &mut Out, rec: &[u8]) {
    let packed = super::squeeze::pack(rec, o.fold);
    o.pending.extend((packed.len() as u32).to_be_bytes());
    o.pending.extend(packed);
}

fn take_segment(i: &mut In, seq: u32, plain: Vec<u8>, window: u32) {
    if seq < i.cum || seq > i.cum + window || i.ooo.contains_key(&seq) {
        return;
    }
    i.ooo.insert(seq, plain);
    while let Some(p) = i.ooo.remove(&i.cum) {
        i.buf.extend(p);
        i.cum += 1;
    }
}

fn next_record(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, SessionError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD + 1 {
        return Err(SessionError::RecordTooLarge(len));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let rec = super::squeeze::unpack(&buf[4..4 + len], MAX_RECORD)
        .map_err(|e| SessionError::BadRecord(e.to_string()))?;
    buf.drain(..4 + len);
    Ok(Some(rec))
}

fn make_turn(
    o: &Out,
    i: &In,
    flags: u8,
    budget_ms: u32,
    hold: Duration,
    signal: (i16, i8),
) -> Turn {
    let mut bitmap = 0u64;
    for &seq in i.ooo.keys() {
        let d = seq - i.cum;
        if (1..=64).contains(&d) {
            bitmap |= 1 << (d - 1);
        }
    }
    Turn {
        cum: i.cum,
        bitmap,
        flags,
        fin: if flags & turn::FIN != 0 {
            o.next_seq
        } else {
            0
        },
        budget_ms,
        hold_ms: hold.as_millis().min(u128::from(u32::MAX)) as u32,
        rssi: signal.0,
        snr_q: signal.1,
    }
}

fn seal(
    noise: &StatelessTransportState,
    kind: Kind,
    flags: u8,
    session: u16,
    counter: u32,
    plain: &[u8],
) -> Result<Vec<u8>, SessionError> {
    let mut f = Frame {
        kind,
        flags,
        session,
        counter,
        body: Vec::new(),
    };
    let mut body = vec![0u8; plain.len() + TAG];
    let n = noise
        .write_message(f.nonce(), plain, &mut body)
        .map_err(|_| SessionError::Exhausted)?;
    body.truncate(n);
    f.body = body;
    Ok(f.encode())
}

fn seal_turn(
    noise: &StatelessTransportState,
    session: u16,
    turn_no: &mut u32,
    t: &Turn,
) -> Result<Vec<u8>, SessionError> {
    if *turn_no > frame::MAX_COUNTER {
        return Err(SessionError::Exhausted);
    }
    let f = seal(noise, Kind::Turn, 0, session, *turn_no, &t.encode())?;
    *turn_no += 1;
    Ok(f)
}

fn open(noise: &StatelessTransportState, f: &Frame) -> Option<Vec<u8>> {
    if f.body.len() < TAG {
        return None;
    }
    let mut plain = vec![0u8; f.body.len()];
    let n = noise.read_message(f.nonce(), &f.body, &mut plain).ok()?;
    plain.truncate(n);
    Some(plain)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
