//! Token buckets keyed by sender or peer address: a burst, then a steady rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle ones are dropped, so a flood of distinct keys
/// (addresses a peer invents) cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

pub struct RateLimiter<K> {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            per_minute: f64::from(per_minute),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token now; `Err(wait)` says how long until one is free.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    /// Whether a token is available, without taking it.
    pub fn peek_empty(&self, key: &K) -> Result<(), Duration> {
        let rate = self.per_minute / 60.0;
        let now = Instant::now();
        let map = self.buckets.lock().expect("rate limiter lock");
        match map.get(key) {
            None => Ok(()),
            Some((tokens, at)) => {
                let t = (tokens + now.saturating_duration_since(*at).as_secs_f64() * rate)
                    .min(self.burst);
                if t >= 1.0 {
                    Ok(())
                } else if rate <= 0.0 {
                    Err(Duration::from_secs(3600))
                } else {
                    Err(Duration::from_secs_f64((1.0 - t) / rate))
                }
            }
        }
    }

    pub fn take_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let rate = self.per_minute / 60.0;
        let mut map = self.buckets.lock().expect("rate limiter lock");
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let burst = self.burst;
            map.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = map.entry(key.clone()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if rate <= 0.0 {
            Err(Duration::from_secs(3600))
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }

    /// Give back a token taken for work that turned out not to happen.
    pub fn refund(&self, key: &K) {
        let mut map = self.buckets.lock().expect("rate limiter lock");
        if let Some((tokens, _)) = map.get_mut(key) {
            *tokens = (*tokens + 1.0).min(self.burst);
        }
    }
}

/// Longest an attempt waits for the checks of earlier ones from its
/// address before it is turned away.
pub const ATTEMPT_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// A limit on failed attempts (logins) per address that cannot be
/// outrun in parallel: each attempt is charged when it starts, before its
/// password is hashed, and refunded when it succeeds. When the budget is
/// spent by attempts still being checked, a new one waits for them (up to
/// [`ATTEMPT_QUEUE_WAIT`]) rather than being turned away, so a phone that
/// logs in all its accounts at once gets through, while sixty wrong
/// passwords sent at once get only the budget's worth of checks.
pub struct Attempts<K> {
    failures: RateLimiter<K>,
    in_flight: Mutex<HashMap<K, u32>>,
    checked: tokio::sync::Notify,
}

/// One attempt under way; dropping it without [`Attempt::succeeded`]
/// leaves it charged as a failure.
pub struct Attempt<'a, K: Eq + Hash + Clone> {
    gate: &'a Attempts<K>,
    key: K,
}

impl<K: Eq + Hash + Clone> Attempts<K> {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Attempts {
            failures: RateLimiter::new(per_minute, burst),
            in_flight: Mutex::new(HashMap::new()),
            checked: tokio::sync::Notify::new(),
        }
    }

    /// Start an attempt, or say how long until one may start.
    pub async fn begin(&self, key: &K) -> Result<Attempt<'_, K>, Duration> {
        let deadline = tokio::time::Instant::now() + ATTEMPT_QUEUE_WAIT;
        loop {
            let checked = self.checked.notified();
            tokio::pin!(checked);
            // Registered before looking, so no completion is missed.
            checked.as_mut().enable();
            {
                let mut in_flight = self.in_flight.lock().expect("attempts lock");
                match self.failures.take(key) {
                    Ok(()) => {
                        *in_flight.entry(key.clone()).or_insert(0) += 1;
                        return Ok(Attempt {
                            gate: self,
                            key: key.clone(),
                        });
                    }
                    Err(wait) if !in_flight.contains_key(key) => return Err(wait),
                    Err(_) => {}
                }
            }
            if tokio::time::timeout_at(deadline, checked).await.is_err() {
                let wait = self.failures.peek_empty(key).err();
                return Err(wait.unwrap_or(Duration::from_secs(1)));
            }
        }
    }
}

impl<K: Eq + Hash + Clone> Attempt<'_, K> {
    /// The attempt was right: it costs nothing.
    pub fn succeeded(self) {
        self.gate.failures.refund(&self.key);
    }
}

impl<K: Eq + Hash + Clone> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        let mut in_flight = self.gate.in_flight.lock().expect("attempts lock");
        if let Some(n) = in_flight.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.key);
            }
        }
        drop(in_flight);
        self.gate.checked.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wrong attempts sent at once get only the budget's worth of checks;
    /// right ones sent at once all get through, waiting for each other.
    #[tokio::test]
    async fn attempts_cannot_outrun_the_limit_in_parallel() {
        let gate = Attempts::new(0, 3);
        let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| gate.begin(&"ip")))
            .await
            .into_iter()
            .map(|a| a.unwrap())
            .collect();
        // The budget is spent by attempts under way: the next one waits.
        let next = gate.begin(&"ip");
        tokio::pin!(next);
        assert!(
            futures_util::FutureExt::now_or_never(next.as_mut()).is_none(),
            "a fourth attempt waits for the three being checked"
        );
        // Two succeed (refunded), one fails: the waiting one gets in.
        let mut held = held.into_iter();
        held.next().unwrap().succeeded();
        let fourth = next.await.expect("a refund lets the next one in");
        held.next().unwrap().succeeded();
        drop(held.next().unwrap()); // failed: stays charged
        fourth.succeeded();
        // One failure spent: two are left, then the address must wait.
        let a = gate.begin(&"ip").await.unwrap();
        let b = gate.begin(&"ip").await.unwrap();
        drop((a, b));
        assert!(
            gate.begin(&"ip").await.is_err(),
            "no budget, nothing under way"
        );
        // Another address is not affected.
        gate.begin(&"other").await.unwrap().succeeded();
    }

    #[test]
    fn burst_then_rate() {
        let rl = RateLimiter::new(60, 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            rl.take_at(&"a", t0).unwrap();
        }
        let wait = rl.take_at(&"a", t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::from_millis(900),
            "{wait:?}"
        );
        // Another sender is not affected.
        rl.take_at(&"b", t0).unwrap();
        // One per second comes back.
        rl.take_at(&"a", t0 + Duration::from_millis(1001)).unwrap();
        assert!(rl.take_at(&"a", t0 + Duration::from_millis(1002)).is_err());
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            rl.take_at(&"a", later).unwrap();
        }
        assert!(rl.take_at(&"a", later).is_err());
        // A refunded token can be taken again, but never beyond the burst.
        rl.refund(&"a");
        rl.take_at(&"a", later).unwrap();
        for _ in 0..20 {
            rl.refund(&"b");
        }
        for _ in 0..10 {
            rl.take_at(&"b", t0).unwrap();
        }
        assert!(rl.take_at(&"b", t0).is_err());
    }
}
