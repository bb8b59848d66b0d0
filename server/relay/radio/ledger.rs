//! The duty-cycle ledger: a sliding-window account of one transmitter's
//! air time in one sub-band, so the radio never sends more than the law
//! allows. Plain arithmetic over `(time, airtime)` entries that the caller
//! persists.

use crate::domain::lora::{SubBand, WINDOW};
use crate::domain::units::Airtime;
use std::collections::VecDeque;
use std::time::Duration;

/// The pacing window: the duty cycle also holds over every six minutes.
pub const PACE_WINDOW: Duration = Duration::from_secs(360);

/// Share of the legal budget the ledger lets cairn use: the rest is margin
/// for the modem's own rounding and a clock that drifts between restarts.
pub const LEDGER_SHARE_PERMILLE: u64 = 950;

/// One transmitter's sliding-window account of air time in one sub-band.
/// Times are milliseconds on any clock that does not run backwards much
/// (wall-clock milliseconds, persisted with each entry).
#[derive(Clone, Debug)]
pub struct Ledger {
    limit: Airtime,
    window_ms: u64,
    entries: VecDeque<(u64, Airtime)>,
    used: Airtime,
}

impl Ledger {
    /// A ledger for `band`, allowed [`LEDGER_SHARE_PERMILLE`] of its budget.
    pub fn new(band: &SubBand) -> Ledger {
        Ledger::with_limit(Airtime(band.budget().0 * LEDGER_SHARE_PERMILLE / 1000))
    }

    pub fn with_limit(limit: Airtime) -> Ledger {
        Ledger::with_window(limit, WINDOW)
    }

    /// A ledger over another window: [`PACE_WINDOW`] with a tenth of the
    /// hour's limit spreads the hour's air time so that a sender that used
    /// it up waits minutes, not most of an hour.
    pub fn with_window(limit: Airtime, window: Duration) -> Ledger {
        Ledger {
            limit,
            window_ms: window.as_millis() as u64,
            entries: VecDeque::new(),
            used: Airtime(0),
        }
    }

    pub fn limit(&self) -> Airtime {
        self.limit
    }

    /// Restores an entry read back from disk. An entry stamped in the
    /// future (the clock went back) counts as if sent now, so a clock that
    /// jumps backwards can only make the ledger stricter.
    pub fn restore(&mut self, now_ms: u64, at_ms: u64, airtime: Airtime) {
        self.push(at_ms.min(now_ms), airtime);
    }

    fn push(&mut self, at_ms: u64, airtime: Airtime) {
        // Keep entries sorted by time (restores may come in any order).
        let pos = self.entries.partition_point(|(t, _)| *t <= at_ms);
        self.entries.insert(pos, (at_ms, airtime));
        self.used += airtime;
    }

    fn expire(&mut self, now_ms: u64) {
        let window = self.window_ms;
        while let Some(&(t, a)) = self.entries.front() {
            if t + window <= now_ms {
                self.entries.pop_front();
                self.used = Airtime(self.used.0 - a.0);
            } else {
                break;
            }
        }
    }

    /// Air time spent in the window ending at `now_ms`.
    pub fn used(&mut self, now_ms: u64) -> Airtime {
        self.expire(now_ms);
        self.used
    }

    /// Air time still allowed in the window ending at `now_ms`.
    pub fn remaining(&mut self, now_ms: u64) -> Airtime {
        let used = self.used(now_ms);
        Airtime(self.limit.0.saturating_sub(used.0))
    }

    /// The earliest time at or after `now_ms` when `cost` fits, or `None`
    /// when it never can (a single packet larger than the whole budget).
    pub fn earliest(&mut self, now_ms: u64, cost: Airtime) -> Option<u64> {
        if cost > self.limit {
            return None;
        }
        self.expire(now_ms);
        let mut used = self.used.0;
        if used + cost.0 <= self.limit.0 {
            return Some(now_ms);
        }
        let window = self.window_ms;
        for &(t, a) in &self.entries {
            used -= a.0;
            if used + cost.0 <= self.limit.0 {
                return Some(t + window);
            }
        }
        Some(now_ms)
    }

    /// Records a transmission of `cost` at `now_ms` if it fits, and says
    /// whether it did. The caller persists the entry before transmitting.
    pub fn try_spend(&mut self, now_ms: u64, cost: Airtime) -> bool {
        if self.earliest(now_ms, cost) == Some(now_ms) {
            self.push(now_ms, cost);
            true
        } else {
            false
        }
    }

    /// Records a transmission starting at `at_ms` (a later frame of a
    /// burst already checked with [`Ledger::earliest`]).
    pub fn spend_at(&mut self, at_ms: u64, cost: Airtime) {
        self.push(at_ms, cost);
    }

    /// Entries still inside the window (for a page or a test).
    pub fn entries(&self) -> impl Iterator<Item = (u64, Airtime)> + '_ {
        self.entries.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lora::Region;

    #[test]
    fn the_ledger_slides_and_never_overspends() {
        let mut l = Ledger::with_limit(Airtime(1_000_000));
        assert!(l.try_spend(0, Airtime(600_000)));
        assert!(!l.try_spend(10, Airtime(600_000)));
        assert_eq!(l.earliest(10, Airtime(600_000)), Some(3_600_000));
        assert!(l.try_spend(20, Airtime(400_000)));
        assert_eq!(l.remaining(30), Airtime(0));
        // The first entry leaves the window after an hour; only it frees.
        assert_eq!(l.remaining(3_600_000), Airtime(600_000));
        assert_eq!(l.earliest(3_600_000, Airtime(700_000)), Some(3_600_020));
        assert_eq!(l.earliest(0, Airtime(2_000_000)), None);
        // A restored entry from the future counts as sent now.
        let mut r = Ledger::with_limit(Airtime(1_000_000));
        r.restore(5_000, 9_000_000, Airtime(900_000));
        assert_eq!(r.remaining(5_000), Airtime(100_000));
        assert_eq!(r.remaining(5_000 + 3_600_000), Airtime(1_000_000));
    }

    #[test]
    fn the_ledger_share_leaves_a_margin() {
        let g3 = Region::Eu868.band_for(869_525_000, 125_000).unwrap();
        let l = Ledger::new(g3);
        assert_eq!(l.limit(), Airtime(342_000_000));
    }

    proptest::proptest! {
        /// Whatever is spent, at whatever times, no hour-long window ever
        /// holds more than the limit.
        #[test]
        fn no_window_exceeds_the_limit(
            steps in proptest::collection::vec((0u64..400_000, 1u64..5_000_000), 1..300)
        ) {
            let limit = Airtime(36_000_000);
            let mut l = Ledger::with_limit(limit);
            let mut now = 0u64;
            let mut sent: Vec<(u64, u64)> = Vec::new();
            for (dt, cost) in steps {
                now += dt;
                if l.try_spend(now, Airtime(cost)) {
                    sent.push((now, cost));
                }
            }
            for &(start, _) in &sent {
                let total: u64 = sent
                    .iter()
                    .filter(|(t, _)| *t >= start && *t < start + 3_600_000)
                    .map(|(_, c)| c)
                    .sum();
                proptest::prop_assert!(total <= limit.0);
            }
        }
    }
}
