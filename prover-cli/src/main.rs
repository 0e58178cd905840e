//! `opml`: the command line of the opml optimistic-ML toolkit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod chain;
mod chain_cmd;
mod claim_model;
mod demo_cmd;
mod devnet_cmd;
mod files;
mod game_cmd;
mod generate_cmd;
mod home;
mod infer_cmd;
mod llm;
mod lm_cmd;
mod model_cmd;
mod node_cmd;
mod output;
mod sample;
mod threads;
mod trace_cmd;
mod vm_cmd;
mod watch;
mod watch_cmd;

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
    /// Integer models: quantize float weights into bundles, inspect and evaluate them; read GGUF models.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Run a bundle natively: output, model commitment, final graph state, optional trace.
    Infer(infer_cmd::InferArgs),
    /// Greedy text generation from an LLM bundle or a GGUF, integer-only, with its commitments and speed.
    Generate(generate_cmd::GenerateArgs),
    /// Language models: evaluate an LLM bundle (perplexity, agreement with the float model).
    #[command(subcommand)]
    Lm(lm_cmd::LmCommand),
    /// Trace files of `opml infer --trace`: compare two runs.
    #[command(subcommand)]
    Trace(trace_cmd::TraceCommand),
    /// One graph node in the VM: run it against the native output, give its step witnesses.
    #[command(subcommand)]
    Node(node_cmd::NodeCommand),
    /// The dispute game off-chain: each move's data from your own run, with its calldata.
    #[command(subcommand)]
    Game(game_cmd::GameCommand),
    /// The dispute game on a chain: deploy, claim, challenge, play a whole game, settle.
    #[command(subcommand)]
    Chain(chain_cmd::ChainCommand),
    /// The whole loop on a private devnet: honest, false and falsely disputed claims, checked
    /// (over a graph bundle's inputs or an LLM bundle's generations).
    Demo(demo_cmd::DemoArgs),
    /// Follow a deployment as a challenger and/or submitter and act by itself.
    Watch(watch_cmd::WatchArgs),
    /// A local chain (anvil) with the contracts deployed, for trying opml: up, status, down.
    #[command(subcommand)]
    Devnet(devnet_cmd::DevnetCommand),
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`opml ... | head`) like other command-line tools,
    // instead of panicking in `println!`.
    // SAFETY: resetting a signal disposition to its default at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vm(cmd) => vm_cmd::run(cmd),
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Infer(args) => infer_cmd::run(args),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Lm(cmd) => lm_cmd::run(cmd),
        Command::Trace(cmd) => trace_cmd::run(cmd),
        Command::Node(cmd) => node_cmd::run(cmd),
        Command::Game(cmd) => game_cmd::run(cmd),
        Command::Chain(cmd) => chain_cmd::run(cmd),
        Command::Watch(args) => watch_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Devnet(cmd) => devnet_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's arguments are well formed (unique names and groups, valid
    /// defaults): clap checks this only when a command is parsed, so check all at once.
    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
