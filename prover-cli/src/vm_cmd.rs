//! `opml vm ...`: run RISC-V programs in the fraud-proof VM, show states and witnesses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use opml_vm::{Checkpoints, Fault, Machine, RunEnd, Status};
use serde_json::json;

use crate::output::{hex, print_witness};

/// Process exit status of `opml vm run` when the program faulted.
const EXIT_FAULTED: u8 = 125;
/// Process exit status of `opml vm run` when the step limit was reached first.
const EXIT_STEP_LIMIT: u8 = 124;
/// Steps between progress updates.
const SLICE: u64 = 1 << 26;

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Run a program to its end (or the step limit). Program output goes to stdout/stderr;
    /// the process exits with the program's exit code (125 if it faulted, 124 if the step
    /// limit was reached).
    Run(RunArgs),
    /// Show the state after N steps.
    State(AtStepArgs),
    /// Show the witness of step N -> N+1: the calldata `(state, proof)` of the on-chain
    /// `step` and the post-state hash.
    Witness(AtStepArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// ELF32 RISC-V executable.
    elf: PathBuf,
    /// Stop after this many steps.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Print one JSON object (program output is captured into it).
    #[arg(long)]
    json: bool,
    /// Write checkpoints of the run to this directory (for fast `state` / `witness`).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 1 << 24)]
    checkpoint_every: u64,
}

#[derive(Debug, Args)]
pub struct AtStepArgs {
    /// ELF32 RISC-V executable.
    elf: PathBuf,
    /// Step number.
    #[arg(long)]
    step: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Start from checkpoints written by `opml vm run --checkpoint-dir` instead of step 0.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
}

pub fn run(cmd: VmCommand) -> Result<ExitCode> {
    match cmd {
        VmCommand::Run(a) => run_program(a),
        VmCommand::State(a) => show_state(a),
        VmCommand::Witness(a) => show_witness(a),
    }
}

fn load(path: &Path) -> Result<(Vec<u8>, Machine)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let m = Machine::from_elf(&bytes).with_context(|| format!("cannot load {}", path.display()))?;
    Ok((bytes, m))
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    let pb = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {human_pos} steps {per_sec} {wide_bar}")
            .expect("valid template"),
    );
    pb
}

/// Run `m` for up to `limit` steps in slices, updating a progress bar.
fn run_with_progress(m: &mut Machine, limit: Option<u64>, pb: &ProgressBar) -> RunEnd {
    let start = m.step;
    loop {
        let left = limit.map_or(SLICE, |l| (start + l).saturating_sub(m.step).min(SLICE));
        if left == 0 {
            return RunEnd::StepLimit;
        }
        let r = m.run(left);
        pb.set_position(m.step - start);
        if r == RunEnd::Halted {
            return r;
        }
    }
}

fn run_program(a: RunArgs) -> Result<ExitCode> {
    let (bytes, mut m) = load(&a.elf)?;
    let captured: Arc<Mutex<(Vec<u8>, Vec<u8>)>> = Arc::default();
    if a.json {
        let c = captured.clone();
        m.set_output(Box::new(move |fd, b| {
            let mut g = c.lock().expect("output lock");
            if fd == 1 {
                g.0.extend_from_slice(b)
            } else {
                g.1.extend_from_slice(b)
            }
        }));
    } else {
        m.set_output(Box::new(|fd, b| {
            // Output is best effort: a closed pipe must not stop the machine.
            let _ = if fd == 1 { std::io::stdout().write_all(b) } else { std::io::stderr().write_all(b) };
        }));
    }
    let pb = progress_bar(a.max_steps);
    if a.json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t0 = Instant::now();
    let end = if let Some(dir) = &a.checkpoint_dir {
        let limit = a.max_steps.unwrap_or(u64::MAX);
        let cps = Checkpoints::record(&mut m, limit, a.checkpoint_every, |s| pb.set_position(s))?;
        cps.save(dir, &bytes).with_context(|| format!("cannot write checkpoints to {}", dir.display()))?;
        if m.is_halted() {
            RunEnd::Halted
        } else {
            RunEnd::StepLimit
        }
    } else {
        run_with_progress(&mut m, a.max_steps, &pb)
    };
    let secs = t0.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let _ = std::io::stdout().flush();
    let state = m.state();
    let state_hash = state.hash();
    let fault = m.fault();
    let insn = m.memory().read_u32(m.pc & !3);
    if a.json {
        let out = captured.lock().expect("output lock");
        let mut j = json!({
            "steps": m.step,
            "status": m.status.name(),
            "exit_code": m.exit_code,
            "pc": m.pc,
            "state_hash": hex(&state_hash),
            "mem_root": hex(&state.mem_root),
            "seconds": secs,
            "steps_per_second": m.step as f64 / secs.max(1e-9),
            "stdout": String::from_utf8_lossy(&out.0),
            "stderr": String::from_utf8_lossy(&out.1),
        });
        if let Some(f) = fault {
            j["fault"] =
                json!({ "reason": f.name(), "code": f.code(), "pc": m.pc, "instruction": format!("{insn:#010x}") });
        }
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        let rate = m.step as f64 / secs.max(1e-9) / 1e6;
        match m.status {
            Status::Exited => eprintln!(
                "exited with code {} after {} steps ({secs:.3} s, {rate:.1} M steps/s)",
                m.exit_code as i32, m.step
            ),
            Status::Faulted => eprintln!(
                "FAULTED after {} steps: {} at pc {:#010x} (instruction word {insn:#010x})",
                m.step,
                fault.map_or("unknown", Fault::name),
                m.pc
            ),
            Status::Running => {
                eprintln!("stopped at the step limit after {} steps ({secs:.3} s, {rate:.1} M steps/s)", m.step)
            }
        }
        eprintln!("state hash {}", hex(&state_hash));
    }
    let _ = end;
    Ok(match m.status {
        Status::Exited => ExitCode::from(m.exit_code as u8),
        Status::Faulted => ExitCode::from(EXIT_FAULTED),
        Status::Running => ExitCode::from(EXIT_STEP_LIMIT),
    })
}

/// The machine after `step` steps, from checkpoints when given.
fn machine_at(a: &AtStepArgs) -> Result<Machine> {
    let (bytes, mut m) = load(&a.elf)?;
    if let Some(dir) = &a.checkpoint_dir {
        return Ok(Checkpoints::restore_from_dir(dir, &bytes, a.step)?);
    }
    let pb = progress_bar(Some(a.step));
    if a.json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    run_with_progress(&mut m, Some(a.step), &pb);
    pb.finish_and_clear();
    Ok(m)
}

fn show_state(a: AtStepArgs) -> Result<ExitCode> {
    let mut m = machine_at(&a)?;
    let s = m.state();
    let note =
        (m.step < a.step).then(|| format!("the machine halted at step {}; a halted state steps to itself", m.step));
    if a.json {
        let mut j = json!({
            "step": s.step,
            "pc": s.pc,
            "status": s.status.name(),
            "exit_code": s.exit_code,
            "regs": s.regs,
            "mem_root": hex(&s.mem_root),
            "state_hash": hex(&s.hash()),
            "encoded": hex(&s.encode()),
        });
        if let Some(f) = m.fault() {
            j["fault"] = json!(f.name());
        }
        if let Some(n) = note {
            j["note"] = json!(n);
        }
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!("step       {}", s.step);
        println!("pc         {:#010x}", s.pc);
        println!("status     {}{}", s.status.name(), m.fault().map(|f| format!(" ({})", f.name())).unwrap_or_default());
        println!("exit_code  {}", s.exit_code);
        println!("mem_root   {}", hex(&s.mem_root));
        println!("state_hash {}", hex(&s.hash()));
        for row in 0..8 {
            let cells: Vec<String> =
                (0..4).map(|c| row * 4 + c).map(|i| format!("x{i:<2} {:#010x}", s.regs[i])).collect();
            println!("{}", cells.join("  "));
        }
        if let Some(n) = note {
            println!("note: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_witness(a: AtStepArgs) -> Result<ExitCode> {
    let mut m = machine_at(&a)?;
    if m.step < a.step && !m.is_halted() {
        bail!("internal: machine stopped at step {} before {}", m.step, a.step);
    }
    print_witness(&m.step_with_witness(), a.json)?;
    Ok(ExitCode::SUCCESS)
}
