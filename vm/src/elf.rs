//! ELF32 RISC-V program loader (docs/spec/vm.md §2).

use goblin::elf::{header, program_header::PT_LOAD, Elf};

use crate::interp::Machine;
use crate::memory::Memory;

/// Why a program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not an ELF file: {0}")]
    Parse(String),
    #[error("ELF class is 64-bit; the VM runs ELF32 (RV32) programs")]
    Class64,
    #[error("ELF file is big-endian; the VM runs little-endian programs")]
    BigEndian,
    #[error("ELF machine is {0} ({1}); the VM runs RISC-V (243) programs")]
    Machine(u16, &'static str),
    #[error("ELF type is {0}; the VM runs executables (ET_EXEC)")]
    Type(u16),
    #[error("segment {index} (vaddr {vaddr:#x}, memsz {memsz:#x}) extends past the 4 GiB address space")]
    OutOfRange { index: usize, vaddr: u64, memsz: u64 },
    #[error("segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}")]
    FileSize { index: usize, filesz: u64, memsz: u64 },
    #[error("segment {index}: file range {offset:#x}+{filesz:#x} is past the end of the {len}-byte file")]
    Truncated { index: usize, offset: u64, filesz: u64, len: usize },
    #[error("segments {a} ({a_start:#x}..{a_end:#x}) and {b} ({b_start:#x}..{b_end:#x}) overlap")]
    Overlap { a: usize, a_start: u64, a_end: u64, b: usize, b_start: u64, b_end: u64 },
}

/// One loaded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u32,
    pub memsz: u32,
    pub executable: bool,
}

/// A validated program: entry point and segments with their file bytes.
type Parsed<'a> = (u32, Vec<(Segment, &'a [u8])>);

/// Parse and validate, returning the entry point and segments with their file bytes.
fn parse(bytes: &[u8]) -> Result<Parsed<'_>, LoadError> {
    let elf = Elf::parse(bytes).map_err(|e| LoadError::Parse(e.to_string()))?;
    if elf.is_64 {
        return Err(LoadError::Class64);
    }
    if !elf.little_endian {
        return Err(LoadError::BigEndian);
    }
    if elf.header.e_machine != header::EM_RISCV {
        return Err(LoadError::Machine(elf.header.e_machine, header::machine_to_str(elf.header.e_machine)));
    }
    if elf.header.e_type != header::ET_EXEC {
        return Err(LoadError::Type(elf.header.e_type));
    }
    let mut segs: Vec<(usize, Segment, &[u8])> = Vec::new();
    for (index, ph) in elf.program_headers.iter().enumerate() {
        if ph.p_type != PT_LOAD || ph.p_memsz == 0 {
            continue;
        }
        if ph.p_vaddr.checked_add(ph.p_memsz).is_none_or(|end| end > 1 << 32) {
            return Err(LoadError::OutOfRange { index, vaddr: ph.p_vaddr, memsz: ph.p_memsz });
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(LoadError::FileSize { index, filesz: ph.p_filesz, memsz: ph.p_memsz });
        }
        let end = ph.p_offset.checked_add(ph.p_filesz);
        if end.is_none_or(|e| e > bytes.len() as u64) {
            return Err(LoadError::Truncated { index, offset: ph.p_offset, filesz: ph.p_filesz, len: bytes.len() });
        }
        let data = &bytes[ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize];
        let seg = Segment { vaddr: ph.p_vaddr as u32, memsz: ph.p_memsz as u32, executable: ph.is_executable() };
        for (other, o, _) in &segs {
            let (a0, a1) = (o.vaddr as u64, o.vaddr as u64 + o.memsz as u64);
            let (b0, b1) = (ph.p_vaddr, ph.p_vaddr + ph.p_memsz);
            if a0 < b1 && b0 < a1 {
                return Err(LoadError::Overlap { a: *other, a_start: a0, a_end: a1, b: index, b_start: b0, b_end: b1 });
            }
        }
        segs.push((index, seg, data));
    }
    Ok((elf.entry as u32, segs.into_iter().map(|(_, s, d)| (s, d)).collect()))
}

/// The segments of a program (for inspection).
pub fn segments(bytes: &[u8]) -> Result<Vec<Segment>, LoadError> {
    Ok(parse(bytes)?.1.into_iter().map(|(s, _)| s).collect())
}

impl Machine {
    /// A machine in the initial state of an ELF program: segments loaded, registers zero,
    /// `pc` at the entry point, the executable range pre-decoded.
    pub fn from_elf(bytes: &[u8]) -> Result<Machine, LoadError> {
        let (entry, segs) = parse(bytes)?;
        let mut mem = Memory::new();
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for (seg, data) in &segs {
            mem.write_bytes(seg.vaddr, data);
            if seg.executable {
                lo = lo.min(seg.vaddr as u64);
                hi = hi.max(seg.vaddr as u64 + seg.memsz as u64);
            }
        }
        let mut m = Machine::with_memory(mem);
        m.pc = entry;
        if lo < hi {
            m.cache_code(lo as u32, (hi - lo).min(u32::MAX as u64) as u32);
        }
        Ok(m)
    }
}

/// A segment to write with [`write_elf32`].
#[derive(Debug, Clone)]
pub struct SegmentSpec<'a> {
    pub vaddr: u32,
    pub data: &'a [u8],
    pub memsz: u32,
    pub executable: bool,
}

/// Write a minimal ELF32 little-endian RISC-V executable (no sections) that [`Machine::from_elf`]
/// loads: for tests and for tools that emit VM programs.
pub fn write_elf32(entry: u32, segments: &[SegmentSpec<'_>]) -> Vec<u8> {
    const EHSIZE: u32 = 52;
    const PHENTSIZE: u32 = 32;
    let mut out = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let push16 = |o: &mut Vec<u8>, v: u16| o.extend_from_slice(&v.to_le_bytes());
    let push32 = |o: &mut Vec<u8>, v: u32| o.extend_from_slice(&v.to_le_bytes());
    push16(&mut out, header::ET_EXEC);
    push16(&mut out, header::EM_RISCV);
    push32(&mut out, 1);
    push32(&mut out, entry);
    push32(&mut out, EHSIZE);
    push32(&mut out, 0);
    push32(&mut out, 0);
    push16(&mut out, EHSIZE as u16);
    push16(&mut out, PHENTSIZE as u16);
    push16(&mut out, segments.len() as u16);
    push16(&mut out, 40);
    push16(&mut out, 0);
    push16(&mut out, 0);
    let mut offset = EHSIZE + PHENTSIZE * segments.len() as u32;
    for s in segments {
        let flags = if s.executable { 5 } else { 6 };
        for v in [PT_LOAD, offset, s.vaddr, s.vaddr, s.data.len() as u32, s.memsz.max(s.data.len() as u32), flags, 4] {
            push32(&mut out, v);
        }
        offset += s.data.len() as u32;
    }
    for s in segments {
        out.extend_from_slice(s.data);
    }
    out
}
