//! The generation links (`docs/spec/ops.md` §5.8), bit-exact with
//! `opml_dnn::ops::llm::token`: `token_select` reads the token of a step, `token_emit`
//! writes a step's argmax into the generated tokens. Both are total over their input
//! bytes, as the native functions are: the lengths are clamped, an id outside the
//! vocabulary reads as 0, and positions are compared unsigned.

use super::{arg, clamp, load_stream, repeat};
use crate::asm::reg::{A1, A2, A6, T0, T1, T2, T3, ZERO};
use crate::asm::Asm;
use opml_dnn::ops::llm::token::{GEN_LEN, PROMPT_LEN};

arg_words! {
    /// Argument words of `token_select`.
    pub mod token_select_args {
        PROMPT, LENGTHS,
        /// The previous step's argmax (0 at position 0, where it is never read).
        PREV,
        OUT,
        /// `P`, the prompt input's length (1..=2^26: the input fits its window).
        P,
        /// The step's position (saturated at `u32::MAX`, which reads `prev` as any
        /// position at or past `P` does).
        POS,
        /// Vocabulary size (1..=2^31-1).
        VOCAB,
    }
}

/// `token_select`: `t = prompt[pos]` if `pos < n`, else `prev[0]`; 0 if `t` lies outside
/// `0..vocab` (one unsigned compare, as a negative id reads above 2^31 - 1).
pub fn token_select(a: &mut Asm) {
    use token_select_args as w;
    let from_prev = a.label();
    let picked = a.label();
    let in_vocab = a.label();
    // t0 = n = clamp(lengths[0], 1, P).
    arg(a, T1, w::LENGTHS);
    a.lw(T0, T1, 4 * PROMPT_LEN as i32);
    a.li(T1, 1);
    arg(a, T2, w::P);
    clamp(a, T0, T1, T2);
    arg(a, T1, w::POS);
    a.bgeu(T1, T0, from_prev);
    arg(a, T2, w::PROMPT);
    a.slli(T1, T1, 2);
    a.add(T2, T2, T1);
    a.lw(T0, T2, 0);
    a.j(picked);
    a.bind(from_prev);
    arg(a, T2, w::PREV);
    a.lw(T0, T2, 0);
    a.bind(picked);
    arg(a, T1, w::VOCAB);
    a.bltu(T0, T1, in_vocab);
    a.li(T0, 0);
    a.bind(in_vocab);
    arg(a, T2, w::OUT);
    a.sw(T0, T2, 0);
    a.exit(0);
}

arg_words! {
    /// Argument words of `token_emit`.
    pub mod token_emit_args {
        /// `gen` (0 at position 0).
        GEN,
        /// Words copied from `gen`: `max_new` at `pos > 0`, 0 at position 0 (the output
        /// window starts zero).
        COPY,
        LENGTHS, NEXT, OUT,
        /// Longest prompt (1..=2^31-1).
        MAX_PROMPT,
        /// Most generated tokens, the output's length (1..=2^31-1).
        MAX_NEW,
        /// The step's position (saturated at `u32::MAX`, past every window as any
        /// position from `2^32 - 1` on is).
        POS,
    }
}

/// `token_emit`: copy `gen`, then `out[j] = next[0]` for `j = pos - (n - 1)` when
/// `pos >= n - 1` and `j < g` (the spec's `j = pos + 1 - n`, formed without the sum
/// `pos + 1`, which could wrap).
pub fn token_emit(a: &mut Asm) {
    use token_emit_args as w;
    let done = a.label();
    load_stream(a, w::GEN, w::OUT, w::COPY);
    repeat(a, A6, A6, |a| {
        a.lw(T0, A1, 0);
        a.sw(T0, A2, 0);
        a.addi(A1, A1, 4);
        a.addi(A2, A2, 4);
    });
    arg(a, A1, w::LENGTHS);
    // t0 = n - 1 with n = clamp(lengths[0], 1, max_prompt).
    a.lw(T0, A1, 4 * PROMPT_LEN as i32);
    a.li(T1, 1);
    arg(a, T2, w::MAX_PROMPT);
    clamp(a, T0, T1, T2);
    a.addi(T0, T0, -1);
    // t1 = g = clamp(lengths[1], 0, max_new).
    a.lw(T1, A1, 4 * GEN_LEN as i32);
    arg(a, T2, w::MAX_NEW);
    clamp(a, T1, ZERO, T2);
    // t2 = j, in the window 0..g or done.
    arg(a, T2, w::POS);
    a.bltu(T2, T0, done);
    a.sub(T2, T2, T0);
    a.bgeu(T2, T1, done);
    arg(a, T3, w::NEXT);
    a.lw(T3, T3, 0);
    arg(a, T0, w::OUT);
    a.slli(T2, T2, 2);
    a.add(T0, T0, T2);
    a.sw(T3, T0, 0);
    a.bind(done);
    a.exit(0);
}
