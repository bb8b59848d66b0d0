//! The tasks of a running hub — services, and one per connection — which
//! it waits for when it stops, and drops when they overstay.
//!
//! A session that waits for its client notices the stop and ends. One that
//! is stuck writing to a phone that walked out of Wi-Fi range mid-fetch
//! would not notice for many minutes (TCP's own timeout); when the hub
//! gives up waiting, [`Tasks::kill`] drops it, which closes its socket, so
//! a hub restarted in the same process leaves nothing of the old one
//! serving.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long dropped tasks get to unwind.
const KILL_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    kill: CancellationToken,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Run `task`; it is dropped where it stands if [`Tasks::kill`] comes
    /// before it ends.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let kill = self.kill.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = kill.cancelled() => {}
            }
        })
    }

    /// Wait up to `grace` for every task to end (no new ones are taken);
    /// then drop those still running. Returns how many were dropped.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return 0;
        }
        let left = self.tracker.len();
        self.kill();
        let _ = tokio::time::timeout(KILL_WAIT, self.tracker.wait()).await;
        left
    }

    /// Drop every task still running.
    pub fn kill(&self) {
        self.kill.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn tasks_that_end_are_waited_for_and_the_stuck_are_dropped() {
        let tasks = Tasks::new();
        let dropped = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let guard = Dropped(dropped.clone());
            tasks.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        let e = ended.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            e.fetch_add(1, Ordering::SeqCst);
        });
        let left = tasks.drain(Duration::from_millis(300)).await;
        assert_eq!(left, 3);
        assert_eq!(dropped.load(Ordering::SeqCst), 3, "the stuck tasks went");
        assert_eq!(ended.load(Ordering::SeqCst), 1, "the other ended by itself");
        assert!(tasks.tracker.is_empty());

        // Nothing stuck: drain returns as soon as all ended.
        let tasks = Tasks::new();
        tasks.spawn(async {});
        assert_eq!(tasks.drain(Duration::from_secs(60)).await, 0);
    }
}
