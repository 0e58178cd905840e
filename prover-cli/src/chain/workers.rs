//! Bounded CPU work: model runs, VM runs and state hashing run on tokio's blocking pool,
//! at most `n` at a time, so that slow work for one game never holds up the moves of
//! another (the async tasks that poll the chain and send moves stay free).

use std::sync::Arc;

use anyhow::{anyhow, Result};
use tokio::sync::Semaphore;

/// A bound on concurrent CPU jobs, shared by every game of a process.
#[derive(Clone, Debug)]
pub struct Workers {
    permits: Arc<Semaphore>,
}

impl Workers {
    /// At most `n` (at least 1) jobs at a time.
    pub fn new(n: usize) -> Self {
        Workers { permits: Arc::new(Semaphore::new(n.max(1))) }
    }

    /// Run `f` on the blocking pool once a permit is free.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.permits.acquire().await.map_err(|_| anyhow!("the worker pool is closed"))?;
        tokio::task::spawn_blocking(f).await.map_err(|e| anyhow!("a worker job failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// No more than `n` jobs overlap, whatever the number of callers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_n_jobs_run_at_once() {
        let w = Workers::new(2);
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (w, now, peak) = (w.clone(), now.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                w.run(move || {
                    let cur = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(cur, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
