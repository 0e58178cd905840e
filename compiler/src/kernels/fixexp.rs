//! The wide stream's fixed-point `exp` and sigmoid as VM subroutines (`docs/spec/ops.md`
//! §5.4, §5.5), and the 64-bit rounding helpers they and the row kernels share.
//!
//! Every intermediate of `exp_q30` fits a register or a register pair: the base-2
//! exponent `u` is below `2^35` whenever the result is not 0, `r` and `y` are below
//! `2^29` in magnitude, and the Horner values stay in `(0, 2^31)` (about
//! `2^30 e^y` with `|y| <= ln2 / 2`), so each rounding is a 64-bit product shifted by 30.
//! The sigmoid's quotient `floor((2^61 + 2^30 + e) / (2 (2^30 + e)))` is a 64-by-32
//! division by a normalised divisor, two `divu` digit estimates (Knuth's algorithm D).
//!
//! Both routines are called with `jal ra` and clobber t0-t6 only (the sigmoid also uses
//! 16 bytes of stack below `sp`); they never touch the `a`, `s`, `gp` or `tp` registers.

use crate::asm::reg::{RA, SP, T0, T1, T2, T3, T4, T5, T6, ZERO};
use crate::asm::{Asm, Label, Reg};

/// `round(log2(e) * 2^30)` (`opml_dnn::ops::llm::exp::LOG2E_Q30`).
const LOG2E_Q30: i32 = 1_549_082_005;
/// `round(ln(2) * 2^30)`.
const LN2_Q30: i32 = 744_261_118;
/// `round(2^30 / k!)`, `k = 0..=8`.
const EXP_TAYLOR_Q30: [i32; 9] =
    [1_073_741_824, 1_073_741_824, 536_870_912, 178_956_971, 44_739_243, 8_947_849, 1_491_308, 213_044, 26_631];

/// The upper 20 bits of `2^29` and `2^30` for `lui`.
const LUI_2_29: u32 = 0x20000;
const LUI_2_30: u32 = 0x40000;

/// The right shift of [`round_shift64`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shift {
    /// A constant in `1..=31`.
    Const(u32),
    /// Register `f` holds the shift (`0..=31`), register `half` holds `2^(f-1)` (anything
    /// when `f = 0`).
    Reg { f: Reg, half: Reg },
}

/// `hi:lo = rshift(hi:lo, s)`: the signed 64-bit value shifted right by `s`, rounded to
/// nearest with ties away from zero, as `(v + 2^(s-1) - [v < 0]) >> s` (arithmetic). The
/// value must be below `2^63 - 2^31` in magnitude. Clobbers the two registers of `t`.
pub(crate) fn round_shift64(a: &mut Asm, lo: Reg, hi: Reg, shift: Shift, t: [Reg; 2]) {
    let [t0, t1] = t;
    let done = a.label();
    a.srli(t0, hi, 31);
    match shift {
        Shift::Const(s) => {
            debug_assert!((1..=31).contains(&s));
            a.li(t1, 1 << (s - 1));
            a.sub(t1, t1, t0);
        }
        Shift::Reg { f, half } => {
            a.beq(f, ZERO, done);
            a.sub(t1, half, t0);
        }
    }
    a.add(lo, lo, t1);
    a.sltu(t0, lo, t1);
    a.add(hi, hi, t0);
    match shift {
        Shift::Const(s) => {
            a.srli(lo, lo, s as i32);
            a.slli(t0, hi, 32 - s as i32);
            a.or(lo, lo, t0);
            a.srai(hi, hi, s as i32);
        }
        Shift::Reg { f, .. } => {
            // `sll` takes the amount mod 32, and `-f = 32 - f` there for f in 1..=31.
            a.srl(lo, lo, f);
            a.sub(t0, ZERO, f);
            a.sll(t0, hi, t0);
            a.or(lo, lo, t0);
            a.sra(hi, hi, f);
        }
    }
    a.bind(done);
}

/// `lo = sat32(hi:lo)`: the signed 64-bit value clamped to i32. Clobbers `t`.
pub(crate) fn sat32(a: &mut Asm, lo: Reg, hi: Reg, t: Reg) {
    let fits = a.label();
    a.srai(t, lo, 31);
    a.beq(t, hi, fits);
    // -1 ^ 0x7fffffff = i32::MIN for a negative value, 0 ^ 0x7fffffff = i32::MAX otherwise.
    a.srai(lo, hi, 31);
    a.li(t, i32::MAX);
    a.xor(lo, lo, t);
    a.bind(fits);
}

/// The routines' entry points (bound by [`emit`]).
#[derive(Clone, Copy, Debug)]
pub struct FixExp {
    /// `t0 = exp_q30(-t0, frac = t1)`: t0 is the magnitude `-d` of a non-positive
    /// exponent as a u32 (`0..=2^32 - 1`), t1 the fraction bits (`0..=31`); the result is
    /// in `0..=2^30`.
    pub exp: Label,
    /// `t0 = sigmoid_q30(t0, frac = t1)` for the i32 `t0`: in `0..=2^30`.
    pub sigmoid: Label,
}

impl FixExp {
    /// Fresh labels.
    pub fn labels(a: &mut Asm) -> FixExp {
        FixExp { exp: a.label(), sigmoid: a.label() }
    }
}

/// Emit both routines, binding the labels of `f`.
pub fn emit(a: &mut Asm, f: &FixExp) {
    exp(a, f.exp);
    sigmoid(a, f);
}

/// `exp_q30` as spelled out in `docs/spec/ops.md` §5.4.
fn exp(a: &mut Asm, entry: Label) {
    a.bind(entry);
    let zero = a.label();
    let unshifted = a.label();
    let done = a.label();
    // t3:t2 = m * LOG2E (exact, below 2^63), then u = rshift(., frac) (non-negative).
    a.li(T2, LOG2E_Q30);
    a.mulhu(T3, T0, T2);
    a.mul(T2, T0, T2);
    a.beq(T1, ZERO, unshifted);
    a.addi(T4, T1, -1);
    a.li(T5, 1);
    a.sll(T4, T5, T4);
    a.add(T2, T2, T4);
    a.sltu(T5, T2, T4);
    a.add(T3, T3, T5);
    a.srl(T2, T2, T1);
    a.sub(T4, ZERO, T1);
    a.sll(T5, T3, T4);
    a.or(T2, T2, T5);
    a.srl(T3, T3, T1);
    a.bind(unshifted);
    // w = u + 2^29; n = w >> 30, and the result is 0 from n = 32 on (w >= 2^35).
    a.lui(T4, LUI_2_29);
    a.add(T2, T2, T4);
    a.sltu(T5, T2, T4);
    a.add(T3, T3, T5);
    a.li(T5, 8);
    a.bgeu(T3, T5, zero);
    a.slli(T6, T3, 2);
    a.srli(T5, T2, 30);
    a.or(T6, T6, T5);
    // r = u - n 2^30 = (w mod 2^30) - 2^29.
    a.slli(T2, T2, 2);
    a.srli(T2, T2, 2);
    a.sub(T2, T2, T4);
    // t1 = y = -rshift(r * LN2, 30).
    a.li(T3, LN2_Q30);
    a.mulh(T5, T2, T3);
    a.mul(T2, T2, T3);
    round_shift64(a, T2, T5, Shift::Const(30), [T3, T4]);
    a.sub(T1, ZERO, T2);
    // Horner: p = c8, then p = c_k + rshift(y * p, 30) for k = 7..=0.
    a.li(T0, EXP_TAYLOR_Q30[8]);
    for &c in EXP_TAYLOR_Q30[..8].iter().rev() {
        a.mul(T2, T1, T0);
        a.mulh(T3, T1, T0);
        round_shift64(a, T2, T3, Shift::Const(30), [T4, T5]);
        a.li(T4, c);
        a.add(T0, T2, T4);
    }
    // rshift(p, n) for 0 < p < 2^31: (p + 2^(n-1)) >> n stays below 2^32.
    a.beq(T6, ZERO, done);
    a.addi(T4, T6, -1);
    a.li(T5, 1);
    a.sll(T4, T5, T4);
    a.add(T0, T0, T4);
    a.srl(T0, T0, T6);
    a.bind(done);
    a.ret();
    a.bind(zero);
    a.li(T0, 0);
    a.ret();
}

/// `t5 = floor((t0 2^32 + t1) / t2)` for a normalised divisor (`t2 >= 2^31`) and
/// `t0 < t2`, so that the quotient fits 32 bits: Knuth's algorithm D with two 16-bit
/// quotient digits (Hacker's Delight `divlu`), each estimated by `divu` from the divisor's
/// top digit and corrected at most twice. Clobbers t0-t6 and the word at `8(sp)`.
fn div_64_32(a: &mut Asm) {
    // t3 = vn1 (the divisor's top digit); un0 to 8(sp), t1 = un1 (the dividend's low digits).
    a.srli(T3, T2, 16);
    a.slli(T6, T1, 16);
    a.srli(T6, T6, 16);
    a.sw(T6, SP, 8);
    a.srli(T1, T1, 16);
    // First digit q1 (t4) from u1 / vn1, remainder estimate rhat (t5); t0 = u1 b + un1 (mod 2^32).
    a.divu(T4, T0, T3);
    a.mul(T5, T4, T3);
    a.sub(T5, T0, T5);
    a.slli(T0, T0, 16);
    a.add(T0, T0, T1);
    correct_digit(a, T4, T1);
    // un21 = u1 b + un1 - q1 v (mod 2^32), the second digit q0 (t1) from un21 / vn1.
    a.mul(T6, T4, T2);
    a.sub(T0, T0, T6);
    a.slli(T4, T4, 16);
    a.divu(T1, T0, T3);
    a.mul(T5, T1, T3);
    a.sub(T5, T0, T5);
    a.lw(T0, SP, 8);
    correct_digit(a, T1, T0);
    a.add(T5, T4, T1);
}

/// While `q >= 2^16` or `q vn0 > rhat 2^16 + un` (vn0 the divisor's low digit): `q -= 1`,
/// `rhat += vn1`, stopping once `rhat >= 2^16`. The second test runs as
/// `q vn0 > un` and `(q vn0 - un - 1) >> 16 >= rhat`, so nothing overflows. The digit `q`
/// and `un` are registers, rhat is t5, vn1 t3, the divisor t2; clobbers t6.
fn correct_digit(a: &mut Asm, q: Reg, un: Reg) {
    let again = a.label();
    let lower = a.label();
    let done = a.label();
    a.bind(again);
    a.srli(T6, q, 16);
    a.bne(T6, ZERO, lower);
    a.slli(T6, T2, 16);
    a.srli(T6, T6, 16);
    a.mul(T6, q, T6);
    a.bgeu(un, T6, done);
    a.sub(T6, T6, un);
    a.addi(T6, T6, -1);
    a.srli(T6, T6, 16);
    a.bltu(T6, T5, done);
    a.bind(lower);
    a.addi(q, q, -1);
    a.add(T5, T5, T3);
    a.srli(T6, T5, 16);
    a.beq(T6, ZERO, again);
    a.bind(done);
}

/// `sigmoid_q30` as spelled out in `docs/spec/ops.md` §5.5. The quotient
/// `floor((2^61 + 2^30 + e) / (2 den))`, `den = 2^30 + e`, is `floor((2^60 + h) / den)` with
/// `h = floor(den / 2)`, and that is `floor((2^61 + 2h) / 2 den)`: a 64-by-32 division by
/// the normalised `2 den` (below 2^32 unless `e = 2^30`, whose quotient is `2^29`).
fn sigmoid(a: &mut Asm, f: &FixExp) {
    a.bind(f.sigmoid);
    a.addi(SP, SP, -16);
    a.sw(RA, SP, 0);
    a.sw(T0, SP, 4);
    // t0 = |x| (i32::MIN gives 2^31 as a u32), then e = exp_q30(-|x|).
    a.srai(T2, T0, 31);
    a.xor(T0, T0, T2);
    a.sub(T0, T0, T2);
    a.jal(RA, f.exp);
    a.lw(RA, SP, 0);
    let divided = a.label();
    a.lui(T2, LUI_2_30);
    a.lui(T5, LUI_2_29);
    a.beq(T0, T2, divided);
    // t2 = den, t1 = 2h, t2 = 2 den, t0 = 2^29 (the dividend's high word).
    a.add(T2, T2, T0);
    a.srli(T1, T2, 1);
    a.slli(T1, T1, 1);
    a.slli(T2, T2, 1);
    a.mv(T0, T5);
    div_64_32(a);
    a.bind(divided);
    // s for x >= 0, 2^30 - s otherwise.
    let positive = a.label();
    a.lw(T1, SP, 4);
    a.addi(SP, SP, 16);
    a.mv(T0, T5);
    a.bge(T1, ZERO, positive);
    a.lui(T0, LUI_2_30);
    a.sub(T0, T0, T5);
    a.bind(positive);
    a.ret();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::reg::{A1, A2, A6};
    use crate::kernels::repeat;
    use crate::layout::{INPUT_BASE, OUTPUT_BASE, STACK_TOP};
    use opml_dnn::ops::llm::exp::exp_q30;
    use opml_dnn::ops::llm::silu::sigmoid_q30;
    use opml_vm::{Machine, RunEnd, Status};
    use proptest::prelude::*;

    /// Run `routine` on each `(t0, t1)` pair in the VM and return the t0 results.
    fn run(routine: impl Fn(&FixExp) -> Label, pairs: &[(u32, u32)]) -> Vec<u32> {
        let mut a = Asm::new();
        let f = FixExp::labels(&mut a);
        repeat(&mut a, A6, A6, |a| {
            a.lw(T0, A1, 0);
            a.lw(T1, A1, 4);
            a.jal(RA, routine(&f));
            a.sw(T0, A2, 0);
            a.addi(A1, A1, 8);
            a.addi(A2, A2, 4);
        });
        a.exit(0);
        emit(&mut a, &f);
        let words: Vec<u32> = pairs.iter().flat_map(|&(x, y)| [x, y]).collect();
        run_program(a.finish().unwrap(), &words, pairs.len())
    }

    /// Run `code` with the input words at a1, the output at a2 and a6 = `count`; return
    /// `count` output words.
    fn run_program(code: Vec<u8>, words: &[u32], count: usize) -> Vec<u32> {
        let mut m = Machine::new();
        m.memory_mut().write_bytes(0, &code);
        let ins: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        m.memory_mut().write_bytes(INPUT_BASE, &ins);
        m.set_reg(A1 as usize, INPUT_BASE);
        m.set_reg(A2 as usize, OUTPUT_BASE);
        m.set_reg(A6 as usize, count as u32);
        m.set_reg(SP as usize, STACK_TOP);
        m.cache_code(0, code.len() as u32);
        assert_eq!(m.run(1 << 30), RunEnd::Halted);
        assert_eq!((m.status, m.exit_code), (Status::Exited, 0));
        (0..count).map(|i| m.memory().read_u32(OUTPUT_BASE + 4 * i as u32)).collect()
    }

    /// `div_64_32` on `(u1, u0, v)` triples in the VM.
    fn run_div(triples: &[(u32, u32, u32)]) -> Vec<u32> {
        let mut a = Asm::new();
        repeat(&mut a, A6, A6, |a| {
            a.lw(T0, A1, 0);
            a.lw(T1, A1, 4);
            a.lw(T2, A1, 8);
            a.addi(SP, SP, -16);
            div_64_32(a);
            a.addi(SP, SP, 16);
            a.sw(T5, A2, 0);
            a.addi(A1, A1, 12);
            a.addi(A2, A2, 4);
        });
        a.exit(0);
        let words: Vec<u32> = triples.iter().flat_map(|&(h, l, v)| [h, l, v]).collect();
        run_program(a.finish().unwrap(), &words, triples.len())
    }

    fn exp_native(m: u32, frac: u32) -> u32 {
        exp_q30(-(m as i64), frac) as u32
    }

    fn sigmoid_native(x: u32, frac: u32) -> u32 {
        sigmoid_q30(x as i32, frac) as u32
    }

    /// Magnitudes at the edges: 0, 1, the u32 limit, and every one around the cut-off
    /// `u + 2^29 = 2^35` (the first result 0) and the points where `n` steps, for each
    /// fraction-bit count.
    fn edge_magnitudes(frac: u32) -> Vec<u32> {
        let mut v = vec![0, 1, 2, u32::MAX, u32::MAX - 1, 1 << 31, (1 << 31) - 1, (1 << 31) + 1];
        for k in [1u64, 2, 31, 32, 33] {
            // |d| with |d| LOG2E / 2^frac near (k - 1/2) 2^30.
            let centre = (((2 * k - 1) << 29) << frac) / LOG2E_Q30 as u64;
            for m in centre.saturating_sub(3)..=centre + 3 {
                v.extend(u32::try_from(m).ok());
            }
        }
        v
    }

    #[test]
    fn exp_matches_the_native_at_the_edges_of_every_fraction() {
        let pairs: Vec<(u32, u32)> =
            (0..=31).flat_map(|f| edge_magnitudes(f).into_iter().map(move |m| (m, f))).collect();
        let got = run(|f| f.exp, &pairs);
        for (&(m, f), g) in pairs.iter().zip(got) {
            assert_eq!(g, exp_native(m, f), "exp_q30(-{m}, {f})");
        }
    }

    #[test]
    fn sigmoid_matches_the_native_at_the_edges_of_every_fraction() {
        let mut pairs = vec![];
        for f in 0..=31 {
            for m in edge_magnitudes(f) {
                pairs.extend([(m, f), (m.wrapping_neg(), f)]);
            }
        }
        let got = run(|f| f.sigmoid, &pairs);
        for (&(x, f), g) in pairs.iter().zip(got) {
            assert_eq!(g, sigmoid_native(x, f), "sigmoid_q30({}, {f})", x as i32);
        }
    }

    /// Quotients of normalised divisions against u64 division: the largest and smallest
    /// divisors and dividends, the sigmoid's divisions on a grid, and random ones (each
    /// digit's correction runs 0, 1 or 2 times among them).
    #[test]
    fn the_64_by_32_division_is_exact() {
        let mut triples = vec![];
        for v in [1u32 << 31, (1 << 31) + 1, u32::MAX, u32::MAX - 1, 0xffff_0000, 0x8000_ffff] {
            for u1 in [0, 1, v / 2, v - 1] {
                for u0 in [0, 1, 0xffff, 0x1_0000, u32::MAX] {
                    triples.push((u1, u0, v));
                }
            }
        }
        // The sigmoid's own divisions, (2^61 + 2h) / 2 den, across den = 2^30 + e.
        for e in (0..1u32 << 30).step_by(4099).chain([1, 2, (1 << 30) - 1]) {
            let den = (1u32 << 30) + e;
            triples.push((1 << 29, den & !1, 2 * den));
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x as u32) | 1 << 31;
            let u1 = ((x >> 32) as u32) % v;
            triples.push((u1, (x >> 16) as u32, v));
        }
        let got = run_div(&triples);
        for (&(u1, u0, v), q) in triples.iter().zip(got) {
            let want = ((u1 as u64) << 32 | u0 as u64) / v as u64;
            assert_eq!(q as u64, want, "({u1} 2^32 + {u0}) / {v}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Random magnitudes, half of them small enough that the result is not 0.
        #[test]
        fn exp_and_sigmoid_match_the_native(xs in proptest::collection::vec((any::<u32>(), 0u32..=31, any::<bool>()), 64)) {
            let pairs: Vec<(u32, u32)> = xs.iter().map(|&(m, f, small)| (if small { m >> (m % 32) } else { m }, f)).collect();
            let e = run(|f| f.exp, &pairs);
            let s = run(|f| f.sigmoid, &pairs);
            for (i, &(m, f)) in pairs.iter().enumerate() {
                prop_assert_eq!(e[i], exp_native(m, f), "exp_q30(-{}, {})", m, f);
                prop_assert_eq!(s[i], sigmoid_native(m, f), "sigmoid_q30({}, {})", m as i32, f);
            }
        }
    }
}
