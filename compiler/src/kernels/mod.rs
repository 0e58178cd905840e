//! VM kernels, one per op (shared by every node of that op), and the shared assembly
//! building blocks. Each kernel reads its argument blob through `a0`
//! (`docs/spec/node-image.md` lists every blob) and ends with `exit(0)`.

use crate::asm::reg::{A0, A1, A2, A3, A6, S0, S1, S3, S4, T0, T1, T2, ZERO};
use crate::asm::{Asm, Reg};
use crate::error::CompileError;

/// An argument blob's layout: a `usize` constant per word, numbered from 0 in the order
/// listed, so that adding a word renumbers the rest instead of leaving a gap or a clash.
/// Items after the `;` (sizes, counts that are not word indices) go into the module as
/// they are.
macro_rules! arg_words {
    ($(#[$doc:meta])* pub mod $name:ident { $($(#[$wdoc:meta])* $word:ident),+ $(,)? $(; $($extra:item)*)? }) => {
        $(#[$doc])*
        pub mod $name {
            #![allow(missing_docs)]
            #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
            enum Word {
                $($word),+
            }
            $($(#[$wdoc])* pub const $word: usize = Word::$word as usize;)+
            $($($extra)*)?
        }
    };
}

pub mod attention;
pub mod blockq;
pub mod copy;
pub mod elementwise;
pub mod fixexp;
pub mod gemm;
pub mod norm;
pub mod pool;
pub mod rmsnorm_wide;
pub mod rope;
pub mod softmax;
pub mod swiglu;
pub mod token;
pub mod wide;

/// The kernels. A kernel's code depends only on its id (and, for measurements, on whether
/// `dot4` is used), never on a node, so the set of kernel code roots is small and fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelId {
    /// `linear` (op 1).
    Linear,
    /// `matmul` (op 2).
    MatMul,
    /// `conv2d` (op 3).
    Conv2d,
    /// `maxpool2d` (op 4).
    MaxPool2d,
    /// `avgpool2d` (op 5).
    AvgPool2d,
    /// `add` (op 6).
    Add,
    /// `requantize` (op 9).
    Requantize,
    /// `relu` (op 10), i8 and i32.
    Relu,
    /// `lut` (op 11).
    Lut,
    /// A word copy: `reshape` (op 15).
    Copy,
    /// `argmax` (op 20), i8 and i32.
    ArgMax,
    /// `qadd` (op 7).
    QAdd,
    /// `qmul` (op 8).
    QMul,
    /// Strided copy: `transpose` (op 16), `concat` (op 17), `slice` (op 18).
    Strided,
    /// `gather` (op 19).
    Gather,
    /// `softmax` (op 12).
    Softmax,
    /// `layernorm` (op 13) and `rmsnorm` (op 14).
    Norm,
    /// `linear_q4_1` (op 21), 8- and 16-bit activations.
    LinearQ4_1,
    /// `linear_q8_0` (op 22), 8- and 16-bit activations.
    LinearQ8_0,
    /// `embed_q8_0` (op 23).
    EmbedQ8_0,
    /// `rmsnorm_wide` (op 24).
    RmsNormWide,
    /// `rope` (op 25).
    Rope,
    /// `swiglu` (op 26).
    SwiGlu,
    /// `attention` (op 27).
    Attention,
    /// `token_select` (op 28).
    TokenSelect,
    /// `token_emit` (op 29).
    TokenEmit,
}

impl KernelId {
    /// Every kernel.
    pub const ALL: [KernelId; 26] = [
        KernelId::Linear,
        KernelId::MatMul,
        KernelId::Conv2d,
        KernelId::MaxPool2d,
        KernelId::AvgPool2d,
        KernelId::Add,
        KernelId::Requantize,
        KernelId::Relu,
        KernelId::Lut,
        KernelId::Copy,
        KernelId::ArgMax,
        KernelId::QAdd,
        KernelId::QMul,
        KernelId::Strided,
        KernelId::Gather,
        KernelId::Softmax,
        KernelId::Norm,
        KernelId::LinearQ4_1,
        KernelId::LinearQ8_0,
        KernelId::EmbedQ8_0,
        KernelId::RmsNormWide,
        KernelId::Rope,
        KernelId::SwiGlu,
        KernelId::Attention,
        KernelId::TokenSelect,
        KernelId::TokenEmit,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            KernelId::Linear => "linear",
            KernelId::MatMul => "matmul",
            KernelId::Conv2d => "conv2d",
            KernelId::MaxPool2d => "maxpool2d",
            KernelId::AvgPool2d => "avgpool2d",
            KernelId::Add => "add",
            KernelId::Requantize => "requantize",
            KernelId::Relu => "relu",
            KernelId::Lut => "lut",
            KernelId::Copy => "copy",
            KernelId::ArgMax => "argmax",
            KernelId::QAdd => "qadd",
            KernelId::QMul => "qmul",
            KernelId::Strided => "strided",
            KernelId::Gather => "gather",
            KernelId::Softmax => "softmax",
            KernelId::Norm => "norm",
            KernelId::LinearQ4_1 => "linear_q4_1",
            KernelId::LinearQ8_0 => "linear_q8_0",
            KernelId::EmbedQ8_0 => "embed_q8_0",
            KernelId::RmsNormWide => "rmsnorm_wide",
            KernelId::Rope => "rope",
            KernelId::SwiGlu => "swiglu",
            KernelId::Attention => "attention",
            KernelId::TokenSelect => "token_select",
            KernelId::TokenEmit => "token_emit",
        }
    }

    /// The kernel's machine code (with `dot4`, as used in disputes).
    pub fn code(self) -> Result<Vec<u8>, CompileError> {
        self.code_with(true)
    }

    /// The kernel's machine code; `dot4 = false` replaces the custom instruction in the
    /// int8 dot products by plain `lb`/`mul`/`add` (block linears: shifts and `mul`), for
    /// measurements only.
    pub fn code_with(self, dot4: bool) -> Result<Vec<u8>, CompileError> {
        let mut a = Asm::new();
        match self {
            KernelId::Linear => gemm::linear(&mut a, dot4),
            KernelId::MatMul => gemm::matmul(&mut a, dot4),
            KernelId::Conv2d => gemm::conv2d(&mut a, dot4),
            KernelId::MaxPool2d => pool::maxpool2d(&mut a),
            KernelId::AvgPool2d => pool::avgpool2d(&mut a),
            KernelId::Add => elementwise::add(&mut a),
            KernelId::Requantize => elementwise::requantize(&mut a),
            KernelId::Relu => elementwise::relu(&mut a),
            KernelId::Lut => elementwise::lut(&mut a),
            KernelId::Copy => elementwise::copy(&mut a),
            KernelId::ArgMax => elementwise::argmax(&mut a),
            KernelId::QAdd => elementwise::qadd(&mut a),
            KernelId::QMul => elementwise::qmul(&mut a),
            KernelId::Strided => copy::strided(&mut a),
            KernelId::Gather => copy::gather(&mut a),
            KernelId::Softmax => softmax::softmax(&mut a),
            KernelId::Norm => norm::norm(&mut a),
            KernelId::LinearQ4_1 => blockq::linear(&mut a, blockq::Format::Q4_1, dot4),
            KernelId::LinearQ8_0 => blockq::linear(&mut a, blockq::Format::Q8_0, dot4),
            KernelId::EmbedQ8_0 => blockq::embed(&mut a),
            KernelId::RmsNormWide => rmsnorm_wide::rmsnorm_wide(&mut a),
            KernelId::Rope => rope::rope(&mut a),
            KernelId::SwiGlu => swiglu::swiglu(&mut a),
            KernelId::Attention => attention::attention(&mut a),
            KernelId::TokenSelect => token::token_select(&mut a),
            KernelId::TokenEmit => token::token_emit(&mut a),
        }
        a.finish()
    }
}

/// Load argument word `i` of the blob at `a0`.
pub(crate) fn arg(a: &mut Asm, rd: Reg, i: usize) {
    a.lw(rd, A0, 4 * i as i32);
}

/// The streaming convention of the element-wise, pooling, softmax and gather kernels: a1
/// walks the input, a2 the output, a6 counts the outer loop (elements, rows or planes)
/// down. Loads the three from argument words `x`, `out`, `count`.
pub(crate) fn load_stream(a: &mut Asm, x: usize, out: usize, count: usize) {
    arg(a, A1, x);
    arg(a, A2, out);
    arg(a, A6, count);
}

/// The streaming convention of the binary kernels (`add`, `qadd`, `qmul`): a1 and a2 walk
/// the inputs, a3 the output, a6 counts the elements down.
pub(crate) fn load_binary_stream(a: &mut Asm, x: usize, y: usize, out: usize, count: usize) {
    arg(a, A1, x);
    arg(a, A2, y);
    arg(a, A3, out);
    arg(a, A6, count);
}

/// Where an operand of a subroutine call comes from. Calls name their operands with it
/// (`gemm::Gemm`, `gemm::Gather`, ...), and the call helper loads each into the register
/// the subroutine takes it in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val {
    /// Argument word `i` of the blob at `a0`.
    Arg(usize),
    /// A register's value (copied unless it already is the operand's register).
    Reg(Reg),
    /// A constant.
    Imm(i32),
}

impl Val {
    /// Emit `rd = self`.
    pub(crate) fn load(self, a: &mut Asm, rd: Reg) {
        match self {
            Val::Arg(i) => arg(a, rd, i),
            Val::Reg(r) if r == rd => {}
            Val::Reg(r) => a.mv(rd, r),
            Val::Imm(v) => a.li(rd, v),
        }
    }
}

/// `ptr += argument word stride` (clobbers t0): the step of a pointer that walks a batch.
pub(crate) fn advance(a: &mut Asm, ptr: Reg, stride: usize) {
    arg(a, T0, stride);
    a.add(ptr, ptr, T0);
}

/// Argument words of a 2-D window's placement: the stride and the leading padding of each
/// axis (`conv2d` and the pooling kernels share the convention).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub sh: usize,
    pub sw: usize,
    pub pt: usize,
    pub pl: usize,
}

/// The input position a window element reads: `t0 = oy*sh + ky - pt`,
/// `t1 = ox*sw + kx - pl`, for the output position (oy, ox) in s0, s1 and the window
/// offset (ky, kx) in s3, s4 (both kernels loop in these registers). A position in the
/// padding is negative or past the edge, so one unsigned compare per axis finds it.
/// Clobbers t2.
pub(crate) fn window_input_pos(a: &mut Asm, w: &Window) {
    arg(a, T0, w.sh);
    a.mul(T0, S0, T0);
    a.add(T0, T0, S3);
    arg(a, T1, w.pt);
    a.sub(T0, T0, T1);
    arg(a, T1, w.sw);
    a.mul(T1, S1, T1);
    a.add(T1, T1, S4);
    arg(a, T2, w.pl);
    a.sub(T1, T1, T2);
}

/// Argument words of a quantized kernel's output stage: the activation bounds, already
/// offset by `-zp` (so clamping before adding the zero point cannot overflow), and the
/// output zero point.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutByte {
    pub lo: usize,
    pub hi: usize,
    pub zp: usize,
}

/// Store `clamp(x, lo, hi) + zp` as the byte at `out`, the words of `o` loaded into
/// `[lo, hi, zp]` of `regs` (the zero point may reuse a bound's register).
pub(crate) fn store_out_byte(a: &mut Asm, x: Reg, out: Reg, o: &OutByte, regs: [Reg; 3]) {
    let [lo, hi, zp] = regs;
    arg(a, lo, o.lo);
    arg(a, hi, o.hi);
    clamp(a, x, lo, hi);
    arg(a, zp, o.zp);
    a.add(x, x, zp);
    a.sb(x, out, 0);
}

/// Run `body` `n` times (the value of register `n` at entry; 0 runs nothing), counting
/// down in `cnt`. The body must leave `cnt` alone.
pub(crate) fn repeat(a: &mut Asm, cnt: Reg, n: Reg, body: impl FnOnce(&mut Asm)) {
    let top = a.label();
    let end = a.label();
    if cnt != n {
        a.mv(cnt, n);
    }
    a.beq(cnt, ZERO, end);
    a.bind(top);
    body(a);
    a.addi(cnt, cnt, -1);
    a.bne(cnt, ZERO, top);
    a.bind(end);
}

/// `for idx in 0..bound { body }` with `idx` counting up; `bound` is a register the body
/// leaves alone.
pub(crate) fn for_up(a: &mut Asm, idx: Reg, bound: Reg, body: impl FnOnce(&mut Asm)) {
    let top = a.label();
    let end = a.label();
    a.li(idx, 0);
    a.bge(idx, bound, end);
    a.bind(top);
    body(a);
    a.addi(idx, idx, 1);
    a.blt(idx, bound, top);
    a.bind(end);
}

/// `rd = min(max(rd, lo), hi)` (signed).
pub(crate) fn clamp(a: &mut Asm, rd: Reg, lo: Reg, hi: Reg) {
    let l1 = a.label();
    let l2 = a.label();
    a.bge(rd, lo, l1);
    a.mv(rd, lo);
    a.bind(l1);
    a.bge(hi, rd, l2);
    a.mv(rd, hi);
    a.bind(l2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::CODE_WINDOW;
    use opml_vm::isa::{decode, Kind};

    fn kinds(code: &[u8]) -> Vec<Kind> {
        code.chunks_exact(4).map(|c| decode(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).kind).collect()
    }

    #[test]
    fn every_kernel_assembles_fits_and_decodes() {
        for k in KernelId::ALL {
            for dot4 in [true, false] {
                let code = k.code_with(dot4).unwrap();
                assert!(!code.is_empty() && code.len() < CODE_WINDOW as usize, "{}", k.name());
                let ks = kinds(&code);
                assert!(!ks.contains(&Kind::Invalid), "{} has an invalid word", k.name());
                assert!(ks.contains(&Kind::Ecall), "{} never exits", k.name());
                let products = matches!(
                    k,
                    KernelId::Linear
                        | KernelId::MatMul
                        | KernelId::Conv2d
                        | KernelId::LinearQ4_1
                        | KernelId::LinearQ8_0
                );
                assert_eq!(ks.contains(&Kind::Dot4), dot4 && products, "{} dot4 use", k.name());
            }
        }
    }
}
