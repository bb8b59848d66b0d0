//! The system clock. A Raspberry Pi has no clock battery: after a power
//! cut it starts at the last saved time (fake-hwclock) until something
//! tells it better — at a camp without Internet, the admin's browser.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Differences below this are left alone (a browser's clock is no better).
pub const TOLERANCE: Duration = Duration::from_secs(120);

/// How far `other` (Unix milliseconds) is ahead of this machine's clock,
/// in seconds (negative: behind).
pub fn offset_secs(other_ms: i64) -> i64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    // Rounded: a browser an hour ahead is "1 h", not "59 min".
    ((other_ms - now_ms) as f64 / 1000.0).round() as i64
}

/// Set the system clock to `ms` (Unix milliseconds). Needs CAP_SYS_TIME,
/// which the appliance's service unit grants.
pub fn set(ms: i64) -> std::io::Result<()> {
    let ts = rustix::time::Timespec {
        tv_sec: ms.div_euclid(1000),
        tv_nsec: ms.rem_euclid(1000) * 1_000_000,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts).map_err(std::io::Error::from)
}
