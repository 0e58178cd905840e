//! The `--threads` option of the commands that run models: a rayon pool of that many workers
//! (all cores by default). Results never depend on the count.

use anyhow::{bail, Context, Result};
use rayon::ThreadPool;

/// A pool of `threads` workers (all cores when `None`); 0 is refused.
pub fn pool(threads: Option<usize>) -> Result<ThreadPool> {
    let mut pb = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        pb = pb.num_threads(t);
    }
    pb.build().context("building the thread pool")
}
