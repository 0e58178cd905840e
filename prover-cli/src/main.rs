//! `opml`: the command line of the opml optimistic-ML toolkit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod infer_cmd;
mod model_cmd;
mod vm_cmd;

#[derive(Debug, Parser)]
#[command(name = "opml", version, about = "Optimistic ML: integer inference with fraud proofs on Ethereum")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The fraud-proof RISC-V VM: run programs, inspect states, produce step witnesses.
    #[command(subcommand)]
    Vm(vm_cmd::VmCommand),
    /// Integer models: quantize float weights into bundles, inspect and evaluate them.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Run a bundle natively: output, model commitment, final graph state, optional trace.
    Infer(infer_cmd::InferArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vm(cmd) => vm_cmd::run(cmd),
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Infer(args) => infer_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
