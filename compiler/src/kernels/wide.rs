//! 128-bit two's complement arithmetic on 16-byte memory slots, as subroutines for the
//! normalisation kernels, one emitting function each. Leaf routines are called with
//! `jal s11` and clobber t0-t5 only; composite routines are called with `jal ra`, take their
//! operands in a5, a6, a7, s10 and also clobber a1-a4, s8 and the slots they name. A slot
//! holds four little-endian 32-bit limbs.

use crate::asm::reg::{A1, A2, A3, A4, A5, A6, A7, RA, S10, S11, S8, T0, T1, T2, T3, T4, T5, T6, ZERO};
use crate::asm::{Asm, Label, Reg};

/// Bytes per slot.
pub const SLOT: i32 = 16;

/// Byte offsets of a slot's limbs, least significant first (carries run this way).
pub const LIMBS_UP: [i32; 4] = [0, 4, 8, 12];
/// Byte offsets of a slot's limbs, most significant first (comparisons and right shifts).
const LIMBS_DOWN: [i32; 4] = [12, 8, 4, 0];

/// A slot's address: a base register plus a byte offset.
pub type At = (Reg, i32);

/// `rd = at` (one `addi`; `mv` when the offset is 0).
fn load_at(a: &mut Asm, rd: Reg, (base, off): At) {
    a.addi(rd, base, off);
}

/// Zero the slots at `slots`, limb by limb.
pub fn clear(a: &mut Asm, slots: &[At]) {
    for off in LIMBS_UP {
        for &(base, at) in slots {
            a.sw(ZERO, base, at + off);
        }
    }
}

/// The routines' entry points (bound by [`emit`]). Kernels call a routine through the
/// method of the same name, which takes the operand slots by name and puts their addresses
/// in the registers the routine reads.
#[derive(Clone, Copy, Debug)]
pub struct Wide {
    add: Label,
    sub: Label,
    neg: Label,
    mulw: Label,
    cmpge: Label,
    shl1: Label,
    shr1: Label,
    mul: Label,
    divmod: Label,
    isqrt: Label,
}

impl Wide {
    /// Fresh labels.
    pub fn labels(a: &mut Asm) -> Wide {
        Wide {
            add: a.label(),
            sub: a.label(),
            neg: a.label(),
            mulw: a.label(),
            cmpge: a.label(),
            shl1: a.label(),
            shr1: a.label(),
            mul: a.label(),
            divmod: a.label(),
            isqrt: a.label(),
        }
    }

    /// Call a leaf routine with `ops` in a1, a2, a3 (as many as given).
    fn leaf(a: &mut Asm, entry: Label, ops: &[At]) {
        for (&rd, &at) in [A1, A2, A3].iter().zip(ops) {
            load_at(a, rd, at);
        }
        a.jal(S11, entry);
    }

    /// `[d] = [x] + [y]` (d may alias x or y).
    pub fn add(&self, a: &mut Asm, d: At, x: At, y: At) {
        Self::leaf(a, self.add, &[d, x, y]);
    }

    /// `[d] = [x] - [y]` (d may alias x or y).
    pub fn sub(&self, a: &mut Asm, d: At, x: At, y: At) {
        Self::leaf(a, self.sub, &[d, x, y]);
    }

    /// `[d] = -[x]`.
    pub fn neg(&self, a: &mut Asm, d: At, x: At) {
        Self::leaf(a, self.neg, &[d, x]);
    }

    /// `[d] = [x] * a4` (u32), mod 2^128; the caller sets a4.
    fn mulw(&self, a: &mut Asm, d: At, x: At) {
        Self::leaf(a, self.mulw, &[d, x]);
    }

    /// `t0 = [x] >= [y]` (unsigned).
    fn cmpge(&self, a: &mut Asm, x: At, y: At) {
        load_at(a, A2, x);
        load_at(a, A3, y);
        a.jal(S11, self.cmpge);
    }

    /// `[d] <<= 1`.
    pub fn shl1(&self, a: &mut Asm, d: At) {
        Self::leaf(a, self.shl1, &[d]);
    }

    /// `[d] >>= 1` (logical).
    pub fn shr1(&self, a: &mut Asm, d: At) {
        Self::leaf(a, self.shr1, &[d]);
    }

    /// `[d] = [x] * [y]` mod 2^128 (d distinct from x and y), with the slot `tmp` as
    /// temporary.
    pub fn mul(&self, a: &mut Asm, d: At, x: At, y: At, tmp: At) {
        load_at(a, A5, d);
        load_at(a, A6, x);
        load_at(a, A7, y);
        load_at(a, T6, tmp);
        a.jal(RA, self.mul);
    }

    /// `[q] = [n] / [d]`, `[r] = [n] % [d]` (unsigned, divisor < 2^127, nonzero).
    pub fn divmod(&self, a: &mut Asm, q: At, r: At, n: At, d: At) {
        load_at(a, A5, q);
        load_at(a, A6, r);
        load_at(a, A7, n);
        load_at(a, S10, d);
        a.jal(RA, self.divmod);
    }

    /// `[d] = isqrt([x])`, with the four slots from `tmp` as temporaries.
    pub fn isqrt(&self, a: &mut Asm, d: At, x: At, tmp: At) {
        load_at(a, A5, d);
        load_at(a, A6, x);
        load_at(a, T6, tmp);
        a.jal(RA, self.isqrt);
    }
}

fn leaf_ret(a: &mut Asm) {
    a.jalr(ZERO, S11, 0);
}

/// `[dst + od] = [x + ox] + [y + oy] + t5` for one limb, the carry out in t5.
/// Clobbers t0-t4.
fn add_limb(a: &mut Asm, (dst, od): (Reg, i32), (x, ox): (Reg, i32), (y, oy): (Reg, i32)) {
    a.lw(T0, x, ox);
    a.lw(T1, y, oy);
    a.add(T2, T0, T1);
    a.sltu(T3, T2, T0);
    a.add(T2, T2, T5);
    a.sltu(T4, T2, T5);
    a.or(T5, T3, T4);
    a.sw(T2, dst, od);
}

/// `t2 = x - t1 - t5` for one limb, the borrow out in t5 (`x` is t0, or zero to negate).
/// Clobbers t3, t4.
fn sub_limb(a: &mut Asm, x: Reg) {
    a.sltu(T3, x, T1);
    a.sub(T2, x, T1);
    a.sltu(T4, T2, T5);
    a.sub(T2, T2, T5);
    a.or(T5, T3, T4);
}

/// Emit every routine, binding the labels of `w`.
pub fn emit(a: &mut Asm, w: &Wide) {
    add(a, w.add);
    sub(a, w.sub);
    neg(a, w.neg);
    mulw(a, w.mulw);
    cmpge(a, w.cmpge);
    shift1(a, w.shl1, true);
    shift1(a, w.shr1, false);
    mul(a, w);
    divmod(a, w);
    isqrt(a, w);
}

/// A leaf routine that runs `limb` for each limb offset in `order`, with t5 (the carry,
/// borrow or bit passed from limb to limb) zero at the start.
fn limb_routine(a: &mut Asm, entry: Label, order: [i32; 4], limb: impl Fn(&mut Asm, i32)) {
    a.bind(entry);
    a.li(T5, 0);
    for off in order {
        limb(a, off);
    }
    leaf_ret(a);
}

/// `[a1] = [a2] + [a3]`: carry in t5.
fn add(a: &mut Asm, entry: Label) {
    limb_routine(a, entry, LIMBS_UP, |a, off| add_limb(a, (A1, off), (A2, off), (A3, off)));
}

/// `[a1] = [a2] - [a3]`: borrow in t5.
fn sub(a: &mut Asm, entry: Label) {
    limb_routine(a, entry, LIMBS_UP, |a, off| {
        a.lw(T0, A2, off);
        a.lw(T1, A3, off);
        sub_limb(a, T0);
        a.sw(T2, A1, off);
    });
}

/// `[a1] = -[a2]`, as `0 - [a2]`.
fn neg(a: &mut Asm, entry: Label) {
    limb_routine(a, entry, LIMBS_UP, |a, off| {
        a.lw(T1, A2, off);
        sub_limb(a, ZERO);
        a.sw(T2, A1, off);
    });
}

/// `[a1] = [a2] * a4`: carry limb in t5.
fn mulw(a: &mut Asm, entry: Label) {
    limb_routine(a, entry, LIMBS_UP, |a, off| {
        a.lw(T0, A2, off);
        a.mul(T1, T0, A4);
        a.mulhu(T2, T0, A4);
        a.add(T1, T1, T5);
        a.sltu(T3, T1, T5);
        a.add(T2, T2, T3);
        a.sw(T1, A1, off);
        a.mv(T5, T2);
    });
}

/// `t0 = [a2] >= [a3]`: from the top limb down, the first that differs decides.
fn cmpge(a: &mut Asm, entry: Label) {
    a.bind(entry);
    let differ = a.label();
    for off in LIMBS_DOWN {
        a.lw(T1, A2, off);
        a.lw(T2, A3, off);
        a.bne(T1, T2, differ);
    }
    a.li(T0, 1);
    leaf_ret(a);
    a.bind(differ);
    a.sltu(T0, T2, T1);
    leaf_ret(a);
}

/// `[a1] <<= 1` (`left`) or `[a1] >>= 1` (logical): the bit carried between limbs in t5.
fn shift1(a: &mut Asm, entry: Label, left: bool) {
    limb_routine(a, entry, if left { LIMBS_UP } else { LIMBS_DOWN }, |a, off| {
        a.lw(T0, A1, off);
        if left {
            a.srli(T1, T0, 31);
            a.slli(T0, T0, 1);
        } else {
            a.slli(T1, T0, 31);
            a.srli(T0, T0, 1);
        }
        a.or(T0, T0, T5);
        a.sw(T0, A1, off);
        a.mv(T5, T1);
    });
}

/// `[a5] = [a6] * [a7]`: schoolbook over the limbs of y, the partial products x * y[k] in
/// the slot at t6.
fn mul(a: &mut Asm, w: &Wide) {
    a.bind(w.mul);
    clear(a, &[(A5, 0)]);
    for k in 0..4 {
        a.lw(A4, A7, 4 * k);
        w.mulw(a, (T6, 0), (A6, 0));
        a.li(T5, 0);
        for j in k..4 {
            add_limb(a, (A5, 4 * j), (A5, 4 * j), (T6, 4 * (j - k)));
        }
    }
    a.ret();
}

/// `[a5] = [a7] / [s10]`, `[a6] = [a7] % [s10]`: restoring division, one quotient bit per
/// iteration.
fn divmod(a: &mut Asm, w: &Wide) {
    a.bind(w.divmod);
    clear(a, &[(A5, 0), (A6, 0)]);
    // Start at the highest set bit of the dividend (none: quotient and remainder 0).
    let found = a.label();
    let scan = a.label();
    let top = a.label();
    let skip = a.label();
    a.li(S8, 127);
    for off in LIMBS_DOWN {
        a.lw(T0, A7, off);
        a.bne(T0, ZERO, found);
        a.addi(S8, S8, -32);
    }
    a.ret();
    a.bind(found);
    a.bind(scan);
    a.andi(T1, S8, 31);
    a.srl(T1, T0, T1);
    a.bne(T1, ZERO, top);
    a.addi(S8, S8, -1);
    a.j(scan);
    a.bind(top);
    w.shl1(a, (A6, 0));
    a.srli(T0, S8, 5);
    a.slli(T0, T0, 2);
    a.add(T0, T0, A7);
    a.lw(T0, T0, 0);
    a.andi(T1, S8, 31);
    a.srl(T0, T0, T1);
    a.andi(T0, T0, 1);
    a.lw(T1, A6, 0);
    a.or(T1, T1, T0);
    a.sw(T1, A6, 0);
    w.shl1(a, (A5, 0));
    w.cmpge(a, (A6, 0), (S10, 0));
    a.beq(T0, ZERO, skip);
    w.sub(a, (A6, 0), (A6, 0), (S10, 0));
    a.lw(T1, A5, 0);
    a.ori(T1, T1, 1);
    a.sw(T1, A5, 0);
    a.bind(skip);
    a.addi(S8, S8, -1);
    a.bge(S8, ZERO, top);
    a.ret();
}

/// `[a5] = isqrt([a6])`: the bit-by-bit method from bit 2^126 (extra leading iterations
/// are no-ops). Slots from t6: +0 rem, +16 res, +32 bit, +48 res + bit.
fn isqrt(a: &mut Asm, w: &Wide) {
    a.bind(w.isqrt);
    for off in LIMBS_UP {
        a.lw(T0, A6, off);
        a.sw(T0, T6, off);
        a.sw(ZERO, T6, SLOT + off);
        a.sw(ZERO, T6, 2 * SLOT + off);
    }
    a.lui(T0, 0x40000); // 2^30 in the top limb: 2^126
    a.sw(T0, T6, 2 * SLOT + 12);
    a.li(S8, 64);
    let top = a.label();
    let smaller = a.label();
    let next = a.label();
    let (rem, res, bit, sum) = ((T6, 0), (T6, SLOT), (T6, 2 * SLOT), (T6, 3 * SLOT));
    a.bind(top);
    w.add(a, sum, res, bit);
    w.cmpge(a, rem, sum);
    a.beq(T0, ZERO, smaller);
    w.sub(a, rem, rem, sum);
    w.shr1(a, res);
    w.add(a, res, res, bit);
    a.j(next);
    a.bind(smaller);
    w.shr1(a, res);
    a.bind(next);
    w.shr1(a, bit);
    w.shr1(a, bit);
    a.addi(S8, S8, -1);
    a.bne(S8, ZERO, top);
    for off in LIMBS_UP {
        a.lw(T0, T6, SLOT + off);
        a.sw(T0, A5, off);
    }
    a.ret();
}
