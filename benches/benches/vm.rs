//! VM benchmarks: memory root after dirty pages, proofs, the witness-only step, and the
//! interpreter on a compute loop. Run: `cargo bench -p opml-benches --bench vm`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opml_vm::isa::{encode, Kind, Op};
use opml_vm::{step, Machine, Memory};

/// 1,000 pages spread over the address space, each with data, hashed once.
fn memory_with_pages(n: u32) -> Memory {
    let mut m = Memory::new();
    for p in 0..n {
        let page = p * 977 % (1 << 20);
        for w in 0..1024u32 {
            m.write_u32(page << 12 | w << 2, p.wrapping_mul(0x9e37_79b9) ^ w);
        }
    }
    m.root();
    m
}

fn root_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory_root");
    g.sample_size(20);
    g.bench_function("1000_dirty_pages_one_word_each", |b| {
        let base = memory_with_pages(1000);
        b.iter_batched_ref(
            || base.clone_hashed(),
            |m| {
                for p in 0..1000u32 {
                    let page = p * 977 % (1 << 20);
                    m.write_u32(page << 12 | 0x40, p);
                }
                black_box(m.root())
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("1000_dirty_pages_fully_rewritten", |b| {
        let base = memory_with_pages(1000);
        b.iter_batched_ref(
            || base.clone_hashed(),
            |m| {
                for p in 0..1000u32 {
                    let page = p * 977 % (1 << 20);
                    for w in 0..1024u32 {
                        m.write_u32(page << 12 | w << 2, w ^ 0x5555_5555);
                    }
                }
                black_box(m.root())
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("1000_fresh_pages_first_root", |b| {
        b.iter_batched_ref(
            || {
                let mut m = Memory::new();
                for p in 0..1000u32 {
                    m.write_u32((p * 977 % (1 << 20)) << 12, p + 1);
                }
                m
            },
            |m| black_box(m.root()),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A counted loop: addi, xor, mul, bne (4 steps per iteration).
fn loop_machine(iters: u32) -> Machine {
    let ops = [
        Op { kind: Kind::Addi, rd: 5, rs1: 5, rs2: 0, imm: u32::MAX },
        Op { kind: Kind::Xor, rd: 6, rs1: 6, rs2: 5, imm: 0 },
        Op { kind: Kind::Mul, rd: 7, rs1: 6, rs2: 6, imm: 0 },
        Op { kind: Kind::Bne, rd: 0, rs1: 5, rs2: 0, imm: (-12i32) as u32 },
        Op { kind: Kind::Ecall, rd: 0, rs1: 0, rs2: 0, imm: 0 },
    ];
    let code: Vec<u8> = ops.iter().flat_map(|o| encode(o).to_le_bytes()).collect();
    let mut m = Machine::new();
    m.memory_mut().write_bytes(0x1_0000, &code);
    m.cache_code(0x1_0000, code.len() as u32);
    m.set_pc(0x1_0000);
    m.regs[17] = 93;
    m.regs[5] = iters;
    m
}

fn interpreter(c: &mut Criterion) {
    let mut g = c.benchmark_group("interpreter");
    let steps = 4 * 1_000_000 + 1;
    g.throughput(Throughput::Elements(steps));
    g.bench_function("alu_loop_4M_steps", |b| {
        b.iter_batched_ref(
            || loop_machine(1_000_000),
            |m| {
                m.run(u64::MAX);
                assert_eq!(m.step, steps);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn witness(c: &mut Criterion) {
    let mut g = c.benchmark_group("witness");
    let mut m = loop_machine(1000);
    m.memory_mut().write_u32(0x8000_0000, 1);
    m.run(5);
    g.bench_function("step_with_witness", |b| {
        b.iter_batched_ref(|| m.clone(), |m| black_box(m.step_with_witness()), BatchSize::SmallInput)
    });
    let w = m.clone().step_with_witness();
    g.bench_function("witness_only_step", |b| b.iter(|| step(black_box(&w.state), black_box(&w.proof)).unwrap()));
    g.finish();
}

criterion_group!(benches, root_update, interpreter, witness);
criterion_main!(benches);
