//! `layernorm` and `rmsnorm` (one kernel, `CENTER` selects), exact in 128-bit two's
//! complement arithmetic on memory slots (`wide`), following `docs/spec/ops.md` step by
//! step: `S`, `c_i`, `Q`, `D = isqrt(floor(Q / n) + eps)`, `z_i = round(c_i 2^16 / D)`,
//! `round((z_i gamma_i + beta_i) / 2^shift) + out_zp`, saturated to i8.

use super::wide::{self, At, Wide, LIMBS_UP, SLOT};
use super::{arg, repeat, store_out_byte, OutByte};
use crate::asm::reg::{GP, S0, S1, S2, S3, S4, S5, S6, S7, S8, S9, T0, T1, T2, T3, T4, TP, ZERO};
use crate::asm::{Asm, Reg};

arg_words! {
    /// Argument words of the norm kernel.
    pub mod norm_args {
        X, OUT, ROWS, N, WIDE, GAMMA, BETA, EPS_LO, EPS_HI, SHIFT, OUT_ZP, LO, HI, SLOTS, CENTER,
        COUNT;
        /// Scratch bytes for the slots.
        pub const SLOT_BYTES: usize = 21 * 16;
    }
}

// Slots (16 bytes each) from gp; tp holds the sign flag of `neg_if`.
const S_SUM: i32 = 0;
const S_Q: i32 = 1;
const S_T: i32 = 2;
const S_D: i32 = 3;
const S_C: i32 = 4;
const S_MULTMP: i32 = 5;
const S_SQ: i32 = 6;
const S_N: i32 = 7;
const S_EPS: i32 = 8;
const S_REM: i32 = 9;
const S_D2: i32 = 10;
const S_NUM: i32 = 11;
const S_Z: i32 = 12;
const S_GAM: i32 = 13;
const S_Y: i32 = 14;
const S_HALF: i32 = 15;
const S_BET: i32 = 16;
const S_ISQ: i32 = 17; // four slots

/// The address of slot `s`.
fn at(s: i32) -> At {
    (GP, SLOT * s)
}

fn zero_slot(a: &mut Asm, s: i32) {
    wide::clear(a, &[at(s)]);
}

/// Slot `s` = sign extension of the 64-bit `hi:lo`. Clobbers t4.
fn store_sext64(a: &mut Asm, s: i32, lo: Reg, hi: Reg) {
    a.sw(lo, GP, SLOT * s);
    a.sw(hi, GP, SLOT * s + 4);
    a.srai(T4, hi, 31);
    a.sw(T4, GP, SLOT * s + 8);
    a.sw(T4, GP, SLOT * s + 12);
}

/// Slot `s` = sign extension of `v`. Clobbers t4.
fn store_sext32(a: &mut Asm, s: i32, v: Reg) {
    a.srai(T4, v, 31);
    store_sext64(a, s, v, T4);
}

/// t0 = element at s7 (i8 or i32 by the WIDE argument).
fn load_x(a: &mut Asm) {
    let narrow = a.label();
    let done = a.label();
    arg(a, T1, norm_args::WIDE);
    a.beq(T1, ZERO, narrow);
    a.lw(T0, S7, 0);
    a.j(done);
    a.bind(narrow);
    a.lb(T0, S7, 0);
    a.bind(done);
}

/// Slot C = `n * x - S` (layernorm) or `x` (rmsnorm) for the element at s7.
fn load_c(a: &mut Asm, w: &Wide) {
    load_x(a);
    let plain = a.label();
    let done = a.label();
    arg(a, T1, norm_args::CENTER);
    a.beq(T1, ZERO, plain);
    arg(a, T2, norm_args::N);
    a.mul(T1, T0, T2);
    a.mulh(T2, T0, T2);
    store_sext64(a, S_C, T1, T2);
    w.sub(a, at(S_C), at(S_C), at(S_SUM));
    a.j(done);
    a.bind(plain);
    store_sext32(a, S_C, T0);
    a.bind(done);
}

/// If tp (sign flag) is set, negate slot `s`.
fn neg_if(a: &mut Asm, w: &Wide, s: i32) {
    let skip = a.label();
    a.beq(TP, ZERO, skip);
    w.neg(a, at(s), at(s));
    a.bind(skip);
}

/// The norm kernel.
pub fn norm(a: &mut Asm) {
    use norm_args as n;
    let w = Wide::labels(a);
    let out = OutByte { lo: n::LO, hi: n::HI, zp: n::OUT_ZP };
    arg(a, GP, n::SLOTS);
    // Constant slots: n, eps, 2^(shift-1).
    zero_slot(a, S_N);
    arg(a, T0, n::N);
    a.sw(T0, GP, SLOT * S_N);
    zero_slot(a, S_EPS);
    arg(a, T0, n::EPS_LO);
    a.sw(T0, GP, SLOT * S_EPS);
    arg(a, T0, n::EPS_HI);
    a.sw(T0, GP, SLOT * S_EPS + 4);
    zero_slot(a, S_HALF);
    let no_half = a.label();
    arg(a, T0, n::SHIFT);
    a.beq(T0, ZERO, no_half);
    a.addi(T0, T0, -1);
    a.srli(T1, T0, 5);
    a.slli(T1, T1, 2);
    a.add(T1, T1, GP);
    a.andi(T0, T0, 31);
    a.li(T2, 1);
    a.sll(T2, T2, T0);
    a.sw(T2, T1, SLOT * S_HALF);
    a.bind(no_half);
    // s3 = element size.
    arg(a, T0, n::WIDE);
    a.slli(T1, T0, 1);
    a.add(T1, T1, T0);
    a.addi(S3, T1, 1);
    arg(a, S0, n::X);
    arg(a, S1, n::OUT);
    arg(a, S2, n::ROWS);
    repeat(a, S2, S2, |a| {
        // S = sum x (layernorm only).
        zero_slot(a, S_SUM);
        let no_sum = a.label();
        arg(a, T0, n::CENTER);
        a.beq(T0, ZERO, no_sum);
        a.mv(S7, S0);
        arg(a, S9, n::N);
        repeat(a, S9, S9, |a| {
            load_x(a);
            store_sext32(a, S_C, T0);
            w.add(a, at(S_SUM), at(S_SUM), at(S_C));
            a.add(S7, S7, S3);
        });
        a.bind(no_sum);
        // Q = sum c^2.
        zero_slot(a, S_Q);
        a.mv(S7, S0);
        arg(a, S9, n::N);
        repeat(a, S9, S9, |a| {
            load_c(a, &w);
            w.mul(a, at(S_SQ), at(S_C), at(S_C), at(S_MULTMP));
            w.add(a, at(S_Q), at(S_Q), at(S_SQ));
            a.add(S7, S7, S3);
        });
        // D = isqrt(floor(Q / n) + eps), D2 = 2D, s4 = (D == 0).
        w.divmod(a, at(S_T), at(S_REM), at(S_Q), at(S_N));
        w.add(a, at(S_T), at(S_T), at(S_EPS));
        w.isqrt(a, at(S_D), at(S_T), at(S_ISQ));
        w.add(a, at(S_D2), at(S_D), at(S_D));
        a.li(S4, 0);
        for off in LIMBS_UP {
            a.lw(T0, GP, SLOT * S_D + off);
            a.or(S4, S4, T0);
        }
        a.sltiu(S4, S4, 1);
        // Elements.
        a.mv(S7, S0);
        arg(a, S5, n::GAMMA);
        arg(a, S6, n::BETA);
        arg(a, S9, n::N);
        repeat(a, S9, S9, |a| {
            load_c(a, &w);
            zero_slot(a, S_Z);
            let gamma_stage = a.label();
            a.bne(S4, ZERO, gamma_stage);
            // z = sign(c) * floor((|c| * 2^17 + D) / 2D).
            a.lw(T0, GP, SLOT * S_C + 12);
            a.srli(TP, T0, 31);
            for off in LIMBS_UP {
                a.lw(T0, GP, SLOT * S_C + off);
                a.sw(T0, GP, SLOT * S_NUM + off);
            }
            neg_if(a, &w, S_NUM);
            a.li(S8, 17);
            repeat(a, S8, S8, |a| {
                w.shl1(a, at(S_NUM));
            });
            w.add(a, at(S_NUM), at(S_NUM), at(S_D));
            w.divmod(a, at(S_Z), at(S_REM), at(S_NUM), at(S_D2));
            neg_if(a, &w, S_Z);
            a.bind(gamma_stage);
            // y = z * gamma + beta.
            a.lw(T0, S5, 0);
            store_sext32(a, S_GAM, T0);
            a.addi(S5, S5, 4);
            w.mul(a, at(S_Y), at(S_Z), at(S_GAM), at(S_MULTMP));
            let no_beta = a.label();
            a.beq(S6, ZERO, no_beta);
            a.lw(T0, S6, 0);
            store_sext32(a, S_BET, T0);
            w.add(a, at(S_Y), at(S_Y), at(S_BET));
            a.addi(S6, S6, 4);
            a.bind(no_beta);
            // r = sign(y) * floor((|y| + 2^(shift-1)) / 2^shift) (r = y when shift = 0).
            let clamp_stage = a.label();
            arg(a, T0, n::SHIFT);
            a.beq(T0, ZERO, clamp_stage);
            a.lw(T0, GP, SLOT * S_Y + 12);
            a.srli(TP, T0, 31);
            neg_if(a, &w, S_Y);
            w.add(a, at(S_Y), at(S_Y), at(S_HALF));
            arg(a, S8, n::SHIFT);
            repeat(a, S8, S8, |a| {
                w.shr1(a, at(S_Y));
            });
            neg_if(a, &w, S_Y);
            a.bind(clamp_stage);
            // Saturate: a value outside i32 becomes the bound of its sign.
            let sat = a.label();
            let in_range = a.label();
            a.lw(T0, GP, SLOT * S_Y);
            a.lw(T1, GP, SLOT * S_Y + 4);
            a.lw(T2, GP, SLOT * S_Y + 8);
            a.lw(T3, GP, SLOT * S_Y + 12);
            a.srai(T4, T0, 31);
            a.bne(T1, T4, sat);
            a.bne(T2, T4, sat);
            a.bne(T3, T4, sat);
            a.j(in_range);
            a.bind(sat);
            arg(a, T0, n::HI);
            a.bge(T3, ZERO, in_range);
            arg(a, T0, n::LO);
            a.bind(in_range);
            store_out_byte(a, T0, S1, &out, [T1, T2, T1]);
            a.addi(S1, S1, 1);
            a.add(S7, S7, S3);
        });
        arg(a, T0, n::N);
        a.mul(T0, T0, S3);
        a.add(S0, S0, T0);
    });
    a.exit(0);
    wide::emit(a, &w);
}
