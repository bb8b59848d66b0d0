//! Uplinks and the syncer that runs them: "Sync now" for every ready
//! uplink at once, and schedules (always, time windows, on appearance,
//! manual). Every run goes to the sync history; live progress is on a
//! [`Board`] that the web page and the command line watch.

use super::carrier::CarrierKind;
use super::link::{self, LinkProgress, LinkState};
use super::schedule::Schedule;
use super::{Relay, RelayError, folder, gateway, nncp};
use crate::domain::UplinkId;
use crate::store::relay::PeerRow;
use crate::store::{SyncCounts, UplinkRow, now};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the scheduler looks at the uplinks.
pub const TICK: Duration = Duration::from_secs(30);
/// An open uplink with nothing queued still syncs this often (seconds), to
/// fetch what waits on the other side.
pub const POLL_EVERY: i64 = 300;
/// Least time between two scheduled syncs of one uplink (seconds), so an
/// item the peer keeps refusing does not cause a sync every tick.
pub const MIN_GAP: i64 = 60;
/// After a failed sync, wait this long (doubling per failure, up to
/// [`RETRY_MAX`]) before the next scheduled try (seconds).
pub const RETRY_FIRST: i64 = 60;
pub const RETRY_MAX: i64 = 1800;
/// New mail for a peer starts its `always` (or open window) uplinks this
/// soon, instead of at the next tick; more mail meanwhile goes along.
pub const QUEUED_DELAY: Duration = Duration::from_secs(1);
/// A reachability probe of a link (for `appear`) waits this long.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One uplink as the board shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UplinkStatus {
    pub id: UplinkId,
    pub peer: String,
    pub carrier: String,
    pub target: String,
    pub running: bool,
    pub progress: LinkProgress,
}

/// Live state of the syncer: every uplink, and the last "Sync now" round.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Board {
    /// Counts "Sync now" rounds since start; 0 before the first.
    pub round: u64,
    /// Uplinks of the round still running.
    pub round_running: bool,
    /// The uplinks the round started.
    pub round_uplinks: Vec<UplinkId>,
    pub uplinks: Vec<UplinkStatus>,
}

impl Board {
    /// The round's uplinks with their progress.
    pub fn round_status(&self) -> Vec<&UplinkStatus> {
        self.round_uplinks
            .iter()
            .filter_map(|id| self.uplinks.iter().find(|u| u.id == *id))
            .collect()
    }

    /// Sums over the round: (uplinks ok, failed, counts).
    pub fn round_summary(&self) -> (usize, usize, SyncCounts) {
        let mut ok = 0;
        let mut failed = 0;
        let mut c = SyncCounts::default();
        for u in self.round_status() {
            match u.progress.state {
                LinkState::Failed => failed += 1,
                LinkState::Done => ok += 1,
                _ => {}
            }
            c.items_out += u.progress.items_out;
            c.items_in += u.progress.items_in;
            c.bytes_out += u.progress.bytes_out;
            c.bytes_in += u.progress.bytes_in;
        }
        (ok, failed, c)
    }
}

/// What the scheduler remembers of an uplink between ticks.
#[derive(Default)]
struct Memory {
    /// Cancels the running sync; `scheduled` ones stop when their window closes.
    running: Option<(CancellationToken, bool)>,
    last_attempt: i64,
    failures: u32,
    present: bool,
}

struct Inner {
    relay: Relay,
    board: watch::Sender<Board>,
    memory: Mutex<HashMap<UplinkId, Memory>>,
    radio: Mutex<Option<super::radio::service::Radio>>,
}

/// Runs uplinks: by hand and on their schedules.
#[derive(Clone)]
pub struct Syncer {
    inner: Arc<Inner>,
}

fn uplink_error(e: impl std::fmt::Display) -> RelayError {
    RelayError::Input(e.to_string())
}

impl Syncer {
    pub fn new(relay: Relay) -> Syncer {
        Syncer {
            inner: Arc::new(Inner {
                relay,
                board: watch::channel(Board::default()).0,
                memory: Mutex::new(HashMap::new()),
                radio: Mutex::new(None),
            }),
        }
    }

    pub fn relay(&self) -> &Relay {
        &self.inner.relay
    }

    /// Gives the syncer the hub's radio, for `lora` uplinks.
    pub fn set_radio(&self, radio: super::radio::service::Radio) {
        *self.inner.radio.lock().expect("not poisoned") = Some(radio);
    }

    fn radio(&self) -> Option<super::radio::service::Radio> {
        self.inner.radio.lock().expect("not poisoned").clone()
    }

    /// Follow the board.
    pub fn board(&self) -> watch::Receiver<Board> {
        self.inner.board.subscribe()
    }

    /// Add an uplink for `peer` (or change the schedule of the same one).
    pub async fn add(
        &self,
        peer: &str,
        carrier: &str,
        target: &str,
        schedule: &str,
        deletion_acks: bool,
    ) -> Result<UplinkRow, RelayError> {
        let relay = &self.inner.relay;
        let p = relay.peer(peer.trim()).await?;
        let schedule = Schedule::parse(schedule).map_err(uplink_error)?.to_string();
        let target = target.trim();
        let kind: CarrierKind = carrier
            .trim()
            .parse()
            .map_err(|e: super::carrier::UnknownCarrier| RelayError::Input(e.to_string()))?;
        match kind {
            CarrierKind::Link | CarrierKind::Lora => {
                if p.is_classic() {
                    return Err(RelayError::Classic(p.name));
                }
                if !target.is_empty() {
                    let uses = if kind == CarrierKind::Link {
                        "the peer's addresses from its card"
                    } else {
                        "the hub's radio (radio.port in the configuration)"
                    };
                    return Err(RelayError::Input(format!(
                        "a {kind} uplink uses {uses}; give no target"
                    )));
                }
                // The configuration, not the radio service: the command
                // line adds uplinks beside a running hub that owns the modem.
                if kind == CarrierKind::Lora && !relay.config.radio {
                    return Err(RelayError::Input(
                        "this hub has no radio: set radio.port in its configuration first".into(),
                    ));
                }
            }
            CarrierKind::Folder | CarrierKind::Usb => {
                if !Path::new(target).is_absolute() {
                    return Err(RelayError::Input(format!(
                        "`{target}` is not an absolute path: name the folder as /media/usb or /srv/sync/camp"
                    )));
                }
            }
            CarrierKind::Smtp => {
                if !p.is_classic() || !p.domain_list().is_empty() || !target.is_empty() {
                    return Err(RelayError::Input(
                        "an smtp uplink belongs to the Internet peer (`cairn peer add-internet`) and takes no target; the smarthost is in the gateway settings"
                            .into(),
                    ));
                }
            }
            CarrierKind::Nncp => {
                if !super::nncp::node_name_ok(target) {
                    return Err(RelayError::Input(format!(
                        "`{target}` is not an NNCP node id or name"
                    )));
                }
            }
        }
        if deletion_acks && !kind.is_folder() {
            return Err(RelayError::Input(
                "only a folder or USB uplink can read a deleted bundle as the acknowledgement"
                    .into(),
            ));
        }
        Ok(relay
            .store()
            .uplink_set(p.id, kind.as_str(), target, &schedule, deletion_acks)
            .await?)
    }

    pub async fn set_schedule(&self, id: UplinkId, schedule: &str) -> Result<(), RelayError> {
        let s = Schedule::parse(schedule).map_err(uplink_error)?;
        if self
            .inner
            .relay
            .store()
            .uplink_schedule(id, &s.to_string())
            .await?
        {
            Ok(())
        } else {
            Err(RelayError::Input(format!(
                "there is no uplink {id}: see `cairn uplink list`"
            )))
        }
    }

    pub async fn remove(&self, id: UplinkId) -> Result<(), RelayError> {
        if let Some((token, _)) = self
            .inner
            .memory
            .lock()
            .expect("not poisoned")
            .remove(&id)
            .and_then(|m| m.running)
        {
            token.cancel();
        }
        if self.inner.relay.store().uplink_remove(id).await? {
            Ok(())
        } else {
            Err(RelayError::Input(format!(
                "there is no uplink {id}: see `cairn uplink list`"
            )))
        }
    }

    /// Whether an uplink's carrier is there now: a link's peer has an
    /// address (and, when `probe`, answers), a folder exists, a USB stick
    /// is mounted.
    async fn present(&self, up: &UplinkRow, peer: &PeerRow, probe: bool) -> bool {
        let Ok(kind) = up.carrier.parse::<CarrierKind>() else {
            return false;
        };
        match kind {
            CarrierKind::Link => {
                let addrs = peer.address_list();
                if addrs.is_empty() {
                    return false;
                }
                if !probe {
                    return true;
                }
                for a in addrs {
                    if self
                        .relay()
                        .carriers()
                        .dial(&a, PROBE_TIMEOUT)
                        .await
                        .is_ok()
                    {
                        return true;
                    }
                }
                false
            }
            CarrierKind::Folder | CarrierKind::Usb => {
                let folder = self.relay().carriers().folder(Path::new(&up.target));
                folder.present() && (kind == CarrierKind::Folder || folder.mounted())
            }
            CarrierKind::Lora => self.radio().is_some_and(|r| r.ready()),
            CarrierKind::Nncp | CarrierKind::Smtp => true,
        }
    }

    /// Why an uplink that is not there now cannot sync, in words that say
    /// what to do.
    fn absence(&self, up: &UplinkRow, kind: CarrierKind) -> String {
        match kind {
            CarrierKind::Folder => format!(
                "skipped: the folder {} does not exist: create it, or correct the uplink",
                up.target
            ),
            CarrierKind::Usb => format!(
                "skipped: no USB stick is mounted at {}: plug in the stick",
                up.target
            ),
            CarrierKind::Link => format!(
                "skipped: {}'s card has no address: add its card again with its address",
                up.peer_name
            ),
            CarrierKind::Lora => "skipped: the radio is not listening: see the Radio page".into(),
            CarrierKind::Nncp | CarrierKind::Smtp => "skipped".into(),
        }
    }

    /// "Sync now": start every ready uplink (of `peer`, if given) at once.
    /// One that is not there now (a missing folder, no stick) is skipped,
    /// and its uplink says why until its next run.
    /// Returns the round number; the board follows it. A round already
    /// running is joined rather than doubled.
    pub async fn sync_now(&self, peer: Option<&str>) -> Result<u64, RelayError> {
        let relay = &self.inner.relay;
        let only = match peer {
            Some(name) => Some(relay.peer(name.trim()).await?),
            None => None,
        };
        {
            let b = self.inner.board.borrow();
            if b.round_running && only.is_none() {
                return Ok(b.round);
            }
        }
        let peers = relay.store().peer_list().await?;
        let mut ready = Vec::new();
        let mut skipped = Vec::new();
        for up in relay.store().uplinks().await? {
            if only.as_ref().is_some_and(|p| p.id != up.peer_id) {
                continue;
            }
            let Some(peer) = peers.iter().find(|p| p.id == up.peer_id) else {
                continue;
            };
            if self.present(&up, peer, false).await {
                ready.push(up);
            } else if let Ok(kind) = up.carrier.parse::<CarrierKind>() {
                let why = self.absence(&up, kind);
                relay.store().uplink_ran(up.id, Some(&why)).await?;
                skipped.push(format!("{} {}: {why}", up.peer_name, up.carrier));
            }
        }
        if ready.is_empty() {
            let mut text = match peer {
                Some(p) => format!(
                    "{p} has no ready uplink: add one (`cairn uplink add`), give its card an address, or plug in its USB stick"
                ),
                None => "no uplink is ready: add one (`cairn uplink add` or the uplinks page), or plug in the USB stick".to_string(),
            };
            for s in &skipped {
                text.push_str("; ");
                text.push_str(s);
            }
            return Err(RelayError::Input(text));
        }
        let ids: Vec<UplinkId> = ready.iter().map(|u| u.id).collect();
        let mut round = 0;
        self.inner.board.send_modify(|b| {
            b.round += 1;
            round = b.round;
            b.round_running = true;
            b.round_uplinks = ids.clone();
        });
        let mut handles = Vec::new();
        for up in ready {
            handles.push(self.start(up, false, now()));
        }
        let this = self.clone();
        tokio::spawn(async move {
            for h in handles.into_iter().flatten() {
                let _ = h.await;
            }
            this.inner.board.send_modify(|b| {
                if b.round == round {
                    b.round_running = false;
                }
            });
        });
        Ok(round)
    }

    /// Start one uplink's sync unless it is running already.
    fn start(
        &self,
        up: UplinkRow,
        scheduled: bool,
        at: i64,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let token = CancellationToken::new();
        {
            let mut mem = self.inner.memory.lock().expect("not poisoned");
            let m = mem.entry(up.id).or_default();
            if m.running.is_some() {
                return None;
            }
            m.running = Some((token.clone(), scheduled));
            m.last_attempt = at;
        }
        let status = UplinkStatus {
            id: up.id,
            peer: up.peer_name.clone(),
            carrier: up.carrier.clone(),
            target: up.target.clone(),
            running: true,
            progress: LinkProgress::default(),
        };
        self.inner
            .board
            .send_modify(|b| match b.uplinks.iter_mut().find(|u| u.id == up.id) {
                Some(u) => *u = status.clone(),
                None => b.uplinks.push(status.clone()),
            });
        let this = self.clone();
        Some(tokio::spawn(async move {
            let (tx, mut rx) = watch::channel(LinkProgress::default());
            let id = up.id;
            let mirror = {
                let board = this.inner.board.clone();
                async move {
                    while rx.changed().await.is_ok() {
                        let p = rx.borrow_and_update().clone();
                        board.send_modify(|b| {
                            if let Some(u) = b.uplinks.iter_mut().find(|u| u.id == id) {
                                u.progress = p;
                            }
                        });
                    }
                }
            };
            let mirroring = tokio::spawn(mirror);
            let result = tokio::select! {
                r = this.run_carrier(&up, &tx) => r,
                _ = token.cancelled() => Err("stopped: its time window closed or it was removed; the next sync continues".to_string()),
            };
            if let Err(e) = &result {
                tx.send_modify(|p| {
                    p.state = LinkState::Failed;
                    p.error.get_or_insert_with(|| e.clone());
                });
            }
            let last = tx.borrow().clone();
            drop(tx);
            let _ = mirroring.await;
            this.inner.board.send_modify(|b| {
                if let Some(u) = b.uplinks.iter_mut().find(|u| u.id == id) {
                    u.progress = last;
                    u.running = false;
                }
            });
            let error = result.err();
            if let Err(e) = this
                .inner
                .relay
                .store()
                .uplink_ran(id, error.as_deref())
                .await
            {
                tracing::warn!(error = %e, "could not record an uplink run");
            }
            let mut mem = this.inner.memory.lock().expect("not poisoned");
            if let Some(m) = mem.get_mut(&id) {
                m.running = None;
                m.failures = if error.is_some() { m.failures + 1 } else { 0 };
            }
        }))
    }

    /// Move mail over one uplink's carrier.
    async fn run_carrier(
        &self,
        up: &UplinkRow,
        progress: &watch::Sender<LinkProgress>,
    ) -> Result<SyncCounts, String> {
        let relay = &self.inner.relay;
        let peer = relay.peer(&up.peer_name).await.map_err(|e| e.to_string())?;
        let kind: CarrierKind = up.carrier.parse().map_err(|e| format!("{e}"))?;
        let label = match kind {
            CarrierKind::Link => {
                return link::sync_peer(relay, &peer, progress)
                    .await
                    .map_err(|e| e.to_string());
            }
            CarrierKind::Lora => {
                let Some(radio) = self.radio() else {
                    return Err("this hub has no radio: set radio.port in its configuration".into());
                };
                return radio.sync(&peer, progress).await;
            }
            CarrierKind::Smtp if relay.config.gateway.smarthost.is_empty() => {
                "smtp (MX)".to_string()
            }
            CarrierKind::Smtp => format!("smtp {}", relay.config.gateway.smarthost),
            other => format!("{other} {}", up.target),
        };
        let store = relay.store();
        let run = store
            .sync_started(Some(peer.id), &peer.name, &label)
            .await
            .map_err(|e| e.to_string())?;
        progress.send_modify(|p| p.state = LinkState::Transfer);
        let result = self.carry(up, kind, &peer, progress).await;
        let counts = progress.borrow().counts();
        let error = result.as_ref().err().map(|e| e.to_string());
        progress.send_modify(|p| match &error {
            None => p.state = LinkState::Done,
            Some(e) => {
                p.state = LinkState::Failed;
                p.error = Some(e.clone());
            }
        });
        if let Err(e) = store.sync_finished(run, &counts, error.as_deref()).await {
            tracing::warn!(error = %e, "could not record the sync in the history");
        }
        match error {
            None => Ok(counts),
            Some(e) => Err(e),
        }
    }

    /// A folder, USB stick or NNCP run: take what came, leave what goes.
    async fn carry(
        &self,
        up: &UplinkRow,
        kind: CarrierKind,
        peer: &PeerRow,
        progress: &watch::Sender<LinkProgress>,
    ) -> Result<(), RelayError> {
        let relay = &self.inner.relay;
        if kind == CarrierKind::Smtp {
            let r = gateway::run(relay, peer).await?;
            progress.send_modify(|p| {
                p.items_out += r.done;
                p.bytes_out += r.bytes;
            });
            if let Some(why) = r.retry {
                return Err(RelayError::Outbox(format!(
                    "{} wait for a later try: {why}",
                    crate::domain::units::count(r.later, "item")
                )));
            }
            return Ok(());
        }
        let dir = Path::new(&up.target);
        if kind != CarrierKind::Nncp {
            // What came first: it may hold acknowledgements, and what it
            // brings is acknowledged in the bundle left behind.
            let got = folder::import(relay, dir, true).await?;
            for (path, r) in &got.refused {
                tracing::warn!(path = %path.display(), error = %r, "a bundle in an uplink's folder was refused");
            }
            progress.send_modify(|p| {
                for (_, i) in &got.imported {
                    p.items_in += i.items as u64;
                }
            });
            folder::taken(relay, peer.id, dir, up.deletion_acks).await?;
        }
        let store = relay.store();
        relay.route_pending().await?;
        let owed = !store.acks_due(peer.id).await?.is_empty();
        let fresh = store.outbox_has_queued(peer.id).await?;
        if !(fresh || owed) {
            return Ok(());
        }
        let e = if kind == CarrierKind::Nncp {
            nncp::send(relay, &peer.name, Some(&up.target), None, None).await?
        } else {
            let left = folder::replace(relay, &peer.name, dir).await?;
            tracing::info!(
                path = %left.path.display(),
                items = left.exported.rows.len(),
                replaced = left.replaced,
                "bundle left for {}",
                peer.name
            );
            left.exported
        };
        progress.send_modify(|p| {
            p.items_out += e.rows.len() as u64;
            p.bytes_out += e.bytes;
        });
        Ok(())
    }

    /// Whether `up` should sync at `at` by its schedule.
    fn due(
        &self,
        up: &UplinkRow,
        schedule: &Schedule,
        present: bool,
        fresh: bool,
        at: i64,
    ) -> bool {
        let mut mem = self.inner.memory.lock().expect("not poisoned");
        let m = mem.entry(up.id).or_default();
        let appeared = present && !m.present;
        m.present = present;
        if m.running.is_some() || !present || !schedule.is_open(at) {
            return false;
        }
        if m.failures > 0 {
            let wait = (RETRY_FIRST << (m.failures - 1).min(10)).min(RETRY_MAX);
            if at - m.last_attempt < wait {
                return false;
            }
        }
        let since = at - m.last_attempt;
        let polls = up
            .carrier
            .parse::<CarrierKind>()
            .is_ok_and(CarrierKind::polls);
        match schedule {
            Schedule::Manual => false,
            Schedule::Appear => appeared || (fresh && since >= MIN_GAP),
            _ => (fresh && since >= MIN_GAP) || (polls && since >= POLL_EVERY),
        }
    }

    /// One look at every uplink as if the clock said `at` (Unix seconds):
    /// stop scheduled syncs whose window closed, start those due. Returns
    /// the uplinks started.
    pub async fn tick(&self, at: i64) -> Result<Vec<UplinkId>, RelayError> {
        self.look(at, false).await
    }

    /// A tick for new mail: only uplinks that are `always` or in an open
    /// window and have something queued start.
    async fn look(&self, at: i64, for_mail: bool) -> Result<Vec<UplinkId>, RelayError> {
        let relay = &self.inner.relay;
        let peers = relay.store().peer_list().await?;
        relay.route_pending().await?;
        let mut started = Vec::new();
        for up in relay.store().uplinks().await? {
            let Ok(schedule) = Schedule::parse(&up.schedule) else {
                continue;
            };
            if !schedule.is_open(at) {
                let mem = self.inner.memory.lock().expect("not poisoned");
                if let Some(Memory {
                    running: Some((token, true)),
                    ..
                }) = mem.get(&up.id)
                {
                    tracing::info!(uplink = up.id.0, peer = %up.peer_name, "time window closed: stopping the sync");
                    token.cancel();
                }
                continue;
            }
            let Some(peer) = peers.iter().find(|p| p.id == up.peer_id) else {
                continue;
            };
            if for_mail && matches!(schedule, Schedule::Appear | Schedule::Manual) {
                continue;
            }
            let probe = schedule == Schedule::Appear;
            let present = self.present(&up, peer, probe).await;
            let fresh = relay.store().outbox_has_queued(peer.id).await?;
            if (fresh || !for_mail)
                && self.due(&up, &schedule, present, fresh, at)
                && self.start(up.clone(), true, at).is_some()
            {
                started.push(up.id);
            }
        }
        Ok(started)
    }

    /// Whether any sync is running.
    pub fn busy(&self) -> bool {
        self.inner
            .memory
            .lock()
            .expect("not poisoned")
            .values()
            .any(|m| m.running.is_some())
    }

    /// Wait until no sync runs.
    pub async fn idle(&self) {
        while self.busy() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run the schedules until `stop`; new mail starts its uplinks soon.
    pub async fn run(self, stop: CancellationToken) {
        use crate::store::Change;
        use tokio::sync::broadcast::error::RecvError;
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.inner.relay.store().changes();
        let mut soon: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(e) = self.tick(now()).await {
                        tracing::warn!(error = %e, "looking at the uplinks failed; will retry");
                    }
                }
                c = changes.recv() => match c {
                    Ok(Change::Queued { .. } | Change::External) | Err(RecvError::Lagged(_)) => {
                        if soon.is_none() {
                            soon = Some(Box::pin(tokio::time::sleep(QUEUED_DELAY)));
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = async { soon.as_mut().expect("guarded").await }, if soon.is_some() => {
                    soon = None;
                    if let Err(e) = self.look(now(), true).await {
                        tracing::warn!(error = %e, "looking at the uplinks failed; will retry");
                    }
                }
                _ = stop.cancelled() => {
                    let mem = self.inner.memory.lock().expect("not poisoned");
                    for m in mem.values() {
                        if let Some((t, _)) = &m.running {
                            t.cancel();
                        }
                    }
                    return;
                }
            }
        }
    }
}
