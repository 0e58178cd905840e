//! The ELF loader on hand-built ELF32 files (independent of any toolchain) and on a real
//! 64-bit host executable.

use opml_vm::{LoadError, Machine, Status};

struct Seg {
    vaddr: u32,
    data: Vec<u8>,
    memsz: u32,
    flags: u32,
}

/// A minimal ELF32 little-endian executable, built byte by byte from the ELF spec.
fn elf32(machine: u16, entry: u32, segs: &[Seg]) -> Vec<u8> {
    let phoff = 52u32;
    let mut data_off = phoff + 32 * segs.len() as u32;
    let mut out = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&phoff.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&52u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(&(segs.len() as u16).to_le_bytes());
    out.extend_from_slice(&40u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    assert_eq!(out.len(), 52);
    for s in segs {
        for v in [1u32, data_off, s.vaddr, s.vaddr, s.data.len() as u32, s.memsz, s.flags, 4] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        data_off += s.data.len() as u32;
    }
    for s in segs {
        out.extend_from_slice(&s.data);
    }
    out
}

/// addi a0, x0, 7 ; addi a7, x0, 93 ; ecall
fn exit7() -> Vec<u8> {
    [0x0070_0513u32, 0x05d0_0893, 0x0000_0073].iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn code(vaddr: u32) -> Seg {
    Seg { vaddr, data: exit7(), memsz: 12, flags: 5 }
}

#[test]
fn a_hand_built_program_loads_and_runs() {
    let data = Seg { vaddr: 0x2_0000, data: vec![1, 2, 3], memsz: 0x2000, flags: 6 };
    let mut m = Machine::from_elf(&elf32(243, 0x1_0000, &[code(0x1_0000), data])).unwrap();
    assert_eq!(m.pc, 0x1_0000);
    assert_eq!(m.regs, [0; 32]);
    assert_eq!(m.memory().read_u8(0x2_0002), 3);
    assert_eq!(m.memory().read_u8(0x2_0003), 0, "memsz beyond filesz is zero");
    assert_eq!(m.cached_code(), (0x1_0000, 12));
    m.run(100);
    assert_eq!((m.status, m.exit_code, m.step), (Status::Exited, 7, 3));
}

#[test]
fn wrong_machine_is_named() {
    let e = Machine::from_elf(&elf32(3, 0x1_0000, &[code(0x1_0000)])).unwrap_err();
    assert!(matches!(e, LoadError::Machine(3, _)), "{e}");
    assert!(e.to_string().contains("RISC-V"), "{e}");
}

#[test]
fn sixty_four_bit_files_are_refused() {
    let host = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let e = Machine::from_elf(&host).unwrap_err();
    assert!(matches!(e, LoadError::Class64), "{e}");
}

#[test]
fn garbage_is_not_an_elf() {
    assert!(matches!(
        Machine::from_elf(b"hello world, not an elf file at all........................").unwrap_err(),
        LoadError::Parse(_)
    ));
    assert!(matches!(Machine::from_elf(&[]).unwrap_err(), LoadError::Parse(_)));
}

#[test]
fn overlapping_segments_are_refused_with_both_named() {
    let e = Machine::from_elf(&elf32(243, 0x1_0000, &[code(0x1_0000), code(0x1_0008)])).unwrap_err();
    match e {
        LoadError::Overlap { a, b, .. } => assert_eq!((a, b), (0, 1)),
        other => panic!("{other}"),
    }
    // Adjacent segments are fine.
    assert!(Machine::from_elf(&elf32(243, 0x1_0000, &[code(0x1_0000), code(0x1_000c)])).is_ok());
}

#[test]
fn segments_past_4_gib_or_with_bad_sizes_are_refused() {
    let high = Seg { vaddr: 0xffff_f000, data: vec![1], memsz: 0x2000, flags: 6 };
    assert!(matches!(Machine::from_elf(&elf32(243, 0, &[high])).unwrap_err(), LoadError::OutOfRange { index: 0, .. }));
    let top = Seg { vaddr: 0xffff_f000, data: vec![1], memsz: 0x1000, flags: 6 };
    assert!(Machine::from_elf(&elf32(243, 0, &[top])).is_ok(), "a segment ending exactly at 4 GiB is fine");
    let big = Seg { vaddr: 0x1000, data: vec![1; 16], memsz: 8, flags: 6 };
    assert!(matches!(Machine::from_elf(&elf32(243, 0, &[big])).unwrap_err(), LoadError::FileSize { .. }));
    let mut truncated = elf32(243, 0x1_0000, &[code(0x1_0000)]);
    truncated.truncate(truncated.len() - 4);
    assert!(matches!(Machine::from_elf(&truncated).unwrap_err(), LoadError::Truncated { .. }));
}
