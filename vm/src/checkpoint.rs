//! Checkpoints: registers plus the pages written since the previous checkpoint, every N
//! steps, so the state and witness at any step of a long run come from the nearest
//! checkpoint instead of a re-run from step 0.

use std::collections::HashSet;
use std::fs;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::interp::{Machine, RunEnd};
use crate::isa::Status;
use crate::memory::{Memory, PAGE_BYTES};

/// Why checkpoints could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: corrupt checkpoint file: {source}")]
    Decode { path: PathBuf, source: bincode::Error },
    #[error("{0}: no checkpoint index (run `opml vm run --checkpoint-dir` first)")]
    NoIndex(PathBuf),
    #[error("checkpoints in {dir} were made for program {found}, not this one ({expected})")]
    WrongProgram { dir: PathBuf, found: String, expected: String },
    #[error("checkpoint interval must be at least 1")]
    ZeroInterval,
}

/// Registers and counters at a checkpoint, plus the pages written since the previous one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub step: u64,
    pub regs: [u32; 32],
    pub pc: u32,
    pub status: Status,
    pub exit_code: u32,
    /// `(page index, 4096 bytes)`.
    pub pages: Vec<(u32, Vec<u8>)>,
}

/// Index of a checkpoint directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Index {
    program: String,
    every: u64,
    code: (u32, u32),
    steps: Vec<u64>,
}

/// An ordered set of checkpoints of one run, in memory.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub every: u64,
    /// Pre-decoded code range of the machine, restored with it.
    pub code: (u32, u32),
    pub list: Vec<Checkpoint>,
}

fn snapshot(m: &mut Machine) -> Checkpoint {
    let pages = m.memory_mut().take_written_pages();
    let pages = pages.into_iter().map(|p| (p, m.memory().page(p).to_vec())).collect();
    Checkpoint { step: m.step, regs: m.regs, pc: m.pc, status: m.status, exit_code: m.exit_code, pages }
}

impl Checkpoints {
    /// Run `m` for at most `max_steps` steps (or until it halts), checkpointing at step 0
    /// (relative to the machine's start) and every `every` steps, and at the end.
    /// `progress` is called with the machine's step count after each interval.
    pub fn record(
        m: &mut Machine,
        max_steps: u64,
        every: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Checkpoints, CheckpointError> {
        if every == 0 {
            return Err(CheckpointError::ZeroInterval);
        }
        // Every page written so far goes into the first checkpoint.
        let mut list = vec![snapshot(m)];
        let end = m.step.saturating_add(max_steps);
        loop {
            let budget = (end - m.step).min(every - m.step % every);
            if budget == 0 {
                break;
            }
            let r = m.run(budget);
            progress(m.step);
            if r == RunEnd::Halted || m.step.is_multiple_of(every) || m.step == end {
                list.push(snapshot(m));
            }
            if r == RunEnd::Halted {
                break;
            }
        }
        Ok(Checkpoints { every, code: m.cached_code(), list })
    }

    /// The machine at step `step` (or the halted state, if the run halted earlier),
    /// rebuilt from the nearest checkpoint at or before it.
    pub fn restore(&self, step: u64) -> Machine {
        let k = self.list.partition_point(|c| c.step <= step).max(1) - 1;
        let mut m = rebuild(self.list[..=k].iter().rev(), self.code);
        m.run(step.saturating_sub(m.step));
        m
    }

    /// Write to a directory: `index.json` plus one file per checkpoint.
    pub fn save(&self, dir: &Path, program: &[u8]) -> Result<(), CheckpointError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        for c in &self.list {
            let path = dir.join(file_name(c.step));
            let f = fs::File::create(&path).map_err(io(&path))?;
            bincode::serialize_into(BufWriter::new(f), c)
                .map_err(|source| CheckpointError::Decode { path: path.clone(), source })?;
        }
        let index = Index {
            program: program_id(program),
            every: self.every,
            code: self.code,
            steps: self.list.iter().map(|c| c.step).collect(),
        };
        let path = dir.join("index.json");
        let json = serde_json::to_string_pretty(&index).expect("index serializes");
        fs::write(&path, json).map_err(io(&path))?;
        Ok(())
    }

    /// The machine at `step`, read from a directory written by [`Checkpoints::save`] for
    /// the same program; reads only the checkpoints at or before `step`.
    pub fn restore_from_dir(dir: &Path, program: &[u8], step: u64) -> Result<Machine, CheckpointError> {
        let index_path = dir.join("index.json");
        let text = fs::read_to_string(&index_path).map_err(|_| CheckpointError::NoIndex(dir.to_path_buf()))?;
        let index: Index = serde_json::from_str(&text).map_err(|_| CheckpointError::NoIndex(dir.to_path_buf()))?;
        let expected = program_id(program);
        if index.program != expected {
            return Err(CheckpointError::WrongProgram { dir: dir.to_path_buf(), found: index.program, expected });
        }
        let k = index.steps.partition_point(|&s| s <= step).max(1) - 1;
        let mut list = Vec::with_capacity(k + 1);
        for &s in index.steps[..=k].iter().rev() {
            let path = dir.join(file_name(s));
            let f = fs::File::open(&path).map_err(|source| CheckpointError::Io { path: path.clone(), source })?;
            let c: Checkpoint = bincode::deserialize_from(BufReader::new(f))
                .map_err(|source| CheckpointError::Decode { path: path.clone(), source })?;
            list.push(c);
        }
        let mut m = rebuild(list.iter(), index.code);
        m.run(step.saturating_sub(m.step));
        Ok(m)
    }
}

/// Rebuild a machine from checkpoints given newest first: registers from the newest, each
/// page from the newest checkpoint that has it.
fn rebuild<'a>(newest_first: impl Iterator<Item = &'a Checkpoint>, code: (u32, u32)) -> Machine {
    let mut mem = Memory::new();
    let mut seen = HashSet::new();
    let mut top: Option<&Checkpoint> = None;
    for c in newest_first {
        top.get_or_insert(c);
        for (p, bytes) in &c.pages {
            if seen.insert(*p) {
                let page: &[u8; PAGE_BYTES] = bytes.as_slice().try_into().expect("checkpoint pages are 4096 bytes");
                mem.write_page(*p, page);
            }
        }
    }
    mem.take_written_pages();
    let top = top.expect("at least one checkpoint");
    let mut m = Machine::with_memory(mem);
    m.regs = top.regs;
    m.pc = top.pc;
    m.step = top.step;
    m.status = top.status;
    m.exit_code = top.exit_code;
    if code.1 > 0 {
        m.cache_code(code.0, code.1);
    }
    m
}

fn file_name(step: u64) -> String {
    format!("ckpt-{step:020}.bin")
}

/// Identity of a program: keccak256 of its bytes, hex.
fn program_id(program: &[u8]) -> String {
    opml_merkle::keccak256(program).iter().map(|b| format!("{b:02x}")).collect()
}
