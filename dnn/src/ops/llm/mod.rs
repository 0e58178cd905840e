//! The integer op set of a Llama-family language model (`docs/spec/ops.md` §5): linears
//! over GGUF block-quantized weights, RMSNorm, RoPE, softmax and causal GQA attention,
//! SiLU / SwiGLU, on a residual stream of i32 fixed-point values.
//!
//! Each module is an op's home (its rule, dims and native kernel); [`crate::Op`] routes
//! the variants `LinearQ4_1`, `LinearQ8_0`, `EmbedQ8_0` (tags 21-23, `qlinear`),
//! `RmsNormWide` (24, `rmsnorm`), `Rope` (25, `rope`), `SwiGlu` (26, `silu`) and
//! `Attention` (27, `attention`) to them, and the generation ops `TokenSelect` and
//! `TokenEmit` (28-29, `token`) that chain one step's graph to the next. The existing `add` (residual), `concat` (the KV
//! cache) and `argmax` (greedy decoding) ops already cover i32 streams. The rest serve
//! those kernels: `blockdot` and `blockq` (block dots, activation quantization),
//! `qgemm` (the packed Q4_1 GEMM), `exp` and `tables` (`exp_q30` and the cached tables
//! of it and the sigmoid), `fixed_import` (GGUF floats to fixed point).

pub mod attention;
pub mod blockdot;
pub mod blockq;
pub mod exp;
pub mod fixed_import;
pub mod qgemm;
pub mod qlinear;
pub mod rmsnorm;
pub mod rope;
pub mod silu;
pub mod tables;
pub mod token;

use super::check::{bad, OpResult};

/// Require a slice of `got` elements where `want` are needed: the native kernels check
/// their operands against their dims, so a caller that builds dims by hand gets an error,
/// never an out-of-bounds panic.
pub(crate) fn want_len(what: &str, got: usize, want: usize) -> OpResult<()> {
    if got != want {
        return Err(bad(format!("{what} has {got} elements, want {want}")));
    }
    Ok(())
}

/// The product of sizes, or an error when it overflows (dims built by hand).
pub(crate) fn prod(sizes: &[usize]) -> OpResult<usize> {
    sizes.iter().try_fold(1usize, |p, &s| p.checked_mul(s)).ok_or_else(|| bad(format!("sizes {sizes:?} overflow")))
}

/// Require a fraction-bit count of the stream (`0..=31`).
pub(crate) fn want_frac(frac: u32) -> OpResult<()> {
    if frac > 31 {
        return Err(bad(format!("fraction bits {frac} above 31")));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared by the tests of this module: thread pools and error measures.

    /// A rayon pool with `n` threads (bit-exactness across thread counts).
    pub(crate) fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("thread pool")
    }

    /// Thread CPU time (Linux; the wall clock elsewhere) of one `step`, averaged over at
    /// least `reps` calls and 0.3 s (the kernel's counter moves in scheduler ticks) on a
    /// one-thread pool, so that other load on the machine does not count.
    pub(crate) fn cpu_seconds_per_call(reps: usize, step: impl Fn() + Send + Sync) -> f64 {
        pool(1).install(|| {
            let cpu = || {
                let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
                Some(stat.split_whitespace().next()?.parse::<f64>().ok()? / 1e9)
            };
            step();
            let (c0, t) = (cpu(), std::time::Instant::now());
            let mut n = 0;
            while n < reps.max(1) || t.elapsed().as_secs_f64() < 0.3 {
                step();
                n += 1;
            }
            match (c0, cpu()) {
                (Some(a), Some(b)) => (b - a) / n as f64,
                _ => t.elapsed().as_secs_f64() / n as f64,
            }
        })
    }

    /// `||got - want|| / ||want||` (Euclidean), with `got` in the same units.
    pub(crate) fn rel_err(got: &[i32], want: &[f64]) -> f64 {
        let num: f64 = got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).powi(2)).sum();
        let den: f64 = want.iter().map(|w| w * w).sum();
        (num / den.max(f64::MIN_POSITIVE)).sqrt()
    }
}
