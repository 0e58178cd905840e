//! Data movement: a strided-copy kernel driven by a list of jobs (transpose, slice and
//! concat lower to it) and the embedding `gather`.

use super::{arg, load_stream, repeat};
use crate::asm::reg::{A0, A1, A2, A6, S0, S1, S10, S11, S2, S3, S4, S5, S6, S9, T0, T1, T2, T3, T4, T5, T6, ZERO};
use crate::asm::Asm;

arg_words! {
    /// Argument words of the strided copy: `idx` (a scratch array of `rank` words), the job
    /// count, then per job `src, dst, element size (1 or 4), rank` followed by `rank` triples
    /// `dim, src stride, dst stride` (strides in bytes, outermost axis first). A job copies
    /// element `i` (multi-index over the dims) from `src + sum i_a * src_stride_a` to
    /// `dst + sum i_a * dst_stride_a`, in row-major order of the multi-index.
    pub mod strided_args {
        IDX, JOBS, FIRST_JOB;
        pub const JOB_HEADER_WORDS: usize = 4;
        pub const AXIS_WORDS: usize = 3;
    }
}

/// The strided copy kernel.
pub fn strided(a: &mut Asm) {
    use strided_args as w;
    arg(a, S11, w::IDX);
    arg(a, S10, w::JOBS);
    a.addi(S9, A0, 4 * w::FIRST_JOB as i32);
    repeat(a, S10, S10, |a| {
        a.lw(S0, S9, 0);
        a.lw(S1, S9, 4);
        a.lw(S2, S9, 8);
        a.lw(S3, S9, 12);
        a.addi(S4, S9, 4 * w::JOB_HEADER_WORDS as i32);
        // numel = product of dims; idx = 0.
        a.li(S5, 1);
        a.mv(T0, S4);
        a.mv(T2, S11);
        repeat(a, T1, S3, |a| {
            a.lw(T3, T0, 0);
            a.mul(S5, S5, T3);
            a.addi(T0, T0, 4 * w::AXIS_WORDS as i32);
            a.sw(ZERO, T2, 0);
            a.addi(T2, T2, 4);
        });
        repeat(a, S6, S5, |a| {
            let byte = a.label();
            let moved = a.label();
            a.li(T0, 4);
            a.bne(S2, T0, byte);
            a.lw(T0, S0, 0);
            a.sw(T0, S1, 0);
            a.j(moved);
            a.bind(byte);
            a.lb(T0, S0, 0);
            a.sb(T0, S1, 0);
            a.bind(moved);
            // Odometer from the innermost axis: t3 = axis, t4 = &idx[axis], t5 = &axis words.
            let next_axis = a.label();
            let done = a.label();
            a.addi(T3, S3, -1);
            a.bind(next_axis);
            a.blt(T3, ZERO, done);
            a.slli(T4, T3, 2);
            a.add(T4, T4, S11);
            a.li(T5, 4 * w::AXIS_WORDS as i32);
            a.mul(T5, T5, T3);
            a.add(T5, T5, S4);
            a.lw(T0, T4, 0);
            a.addi(T0, T0, 1);
            a.sw(T0, T4, 0);
            a.lw(T1, T5, 4);
            a.add(S0, S0, T1);
            a.lw(T2, T5, 8);
            a.add(S1, S1, T2);
            a.lw(T6, T5, 0);
            a.blt(T0, T6, done);
            // Wrap this axis: back to its start, carry into the next one out.
            a.mul(T1, T1, T6);
            a.sub(S0, S0, T1);
            a.mul(T2, T2, T6);
            a.sub(S1, S1, T2);
            a.sw(ZERO, T4, 0);
            a.addi(T3, T3, -1);
            a.j(next_axis);
            a.bind(done);
        });
        // Next job: past this job's axis words.
        a.li(T0, 4 * w::AXIS_WORDS as i32);
        a.mul(T0, T0, S3);
        a.add(S9, S4, T0);
    });
    a.exit(0);
}

arg_words! {
    /// Argument words of `gather`.
    pub mod gather_args {
        IDX, TABLE, OUT, COUNT,
        /// Rows of the table.
        V,
        /// Bytes per row.
        ROW_BYTES,
    }
}

/// `gather`: row `t` of the table for each index `t`; an index outside `0..V` ends the
/// run with `exit(1)` (the native executor rejects such a run too).
pub fn gather(a: &mut Asm) {
    use gather_args as w;
    let bad = a.label();
    load_stream(a, w::IDX, w::OUT, w::COUNT);
    arg(a, S1, w::TABLE);
    arg(a, S2, w::V);
    arg(a, S3, w::ROW_BYTES);
    repeat(a, A6, A6, |a| {
        a.lw(T0, A1, 0);
        a.bgeu(T0, S2, bad);
        a.mul(T0, T0, S3);
        a.add(T0, T0, S1);
        repeat(a, T1, S3, |a| {
            a.lb(T2, T0, 0);
            a.sb(T2, A2, 0);
            a.addi(T0, T0, 1);
            a.addi(A2, A2, 1);
        });
        a.addi(A1, A1, 4);
    });
    a.exit(0);
    a.bind(bad);
    a.exit(1);
}
