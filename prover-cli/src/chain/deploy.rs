//! Deploying the contracts (`opml chain deploy`, `opml devnet up`): `Step`,
//! `ModelRegistry` and `OptimisticML` from forge's artifacts, with a game configuration
//! built from defaults and the flags that override them.

use alloy::primitives::U256;
use alloy::rpc::types::TransactionReceipt;
use alloy_sol_types::SolValue;
use anyhow::{anyhow, Result};
use clap::Args;
use opml_cli::game::abi::IOptimisticML;

use super::client::Client;
use super::deployment::{creation_code, ConfigJson, Deployment};

alloy_sol_types::sol! {
    /// The getter of the verifier `OptimisticML`'s constructor deploys.
    interface IHandoverGetter {
        function handoverVerifier() external view returns (address);
    }
}

/// 10^18 wei.
const ETHER: u128 = 1_000_000_000_000_000_000;

/// `opml chain deploy`'s configuration: a day to challenge a claim, an hour of clock per
/// side, a week before an unfulfilled request may be cancelled.
pub const CHAIN_DEFAULTS: IOptimisticML::Config = IOptimisticML::Config {
    arity: 16,
    vmDepth: 32,
    challengeWindow: 86_400,
    clock: 3_600,
    requestTimeout: 7 * 86_400,
    callbackGas: 200_000,
    submitterBond: ETHER / 10,
    challengerBond: ETHER / 20,
    burnBps: 2_500,
};

/// `opml devnet up`'s configuration, for following games by hand and for demos: a
/// two-minute challenge window (an honest claim finalizes while you watch, yet there is
/// time to type `opml chain challenge`), ten minutes of clock per side (time to run a move
/// by hand with `opml game` and `cast`, while a stalled game still times out within
/// minutes), an hour before a request may be cancelled. Arity 16 and VM depth 32 are those
/// of a real deployment, so games have the same shape (a digits model: one graph round,
/// eight VM rounds).
pub const DEVNET_DEFAULTS: IOptimisticML::Config =
    IOptimisticML::Config { challengeWindow: 120, clock: 600, requestTimeout: 3_600, ..CHAIN_DEFAULTS };

/// The game configuration flags; each one not given keeps the command's default.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Dissection arity k [default: 16].
    #[arg(long)]
    pub arity: Option<u64>,
    /// VM depth D: the VM phase dissects steps [0, 2^D] [default: 32].
    #[arg(long)]
    pub vm_depth: Option<u64>,
    /// Challenge window, seconds [default: 86400; devnet: 120].
    #[arg(long)]
    pub window: Option<u64>,
    /// Chess-clock budget of each side per game, seconds [default: 3600; devnet: 600].
    #[arg(long)]
    pub clock: Option<u64>,
    /// Seconds after which an unfulfilled request may be cancelled [default: 604800; devnet: 3600].
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Gas given to a consumer callback at finalize [default: 200000].
    #[arg(long)]
    pub callback_gas: Option<u64>,
    /// Submitter bond, wei [default: 10^17].
    #[arg(long)]
    pub submitter_bond: Option<u128>,
    /// Challenger bond, wei [default: 5 * 10^16].
    #[arg(long)]
    pub challenger_bond: Option<u128>,
    /// Share of a loser's bond burnt, basis points [default: 2500].
    #[arg(long)]
    pub burn_bps: Option<u16>,
}

impl ConfigArgs {
    /// `defaults` with every given flag in place of its field.
    pub fn config(&self, defaults: &IOptimisticML::Config) -> IOptimisticML::Config {
        let d = defaults;
        IOptimisticML::Config {
            arity: self.arity.unwrap_or(d.arity),
            vmDepth: self.vm_depth.unwrap_or(d.vmDepth),
            challengeWindow: self.window.unwrap_or(d.challengeWindow),
            clock: self.clock.unwrap_or(d.clock),
            requestTimeout: self.request_timeout.unwrap_or(d.requestTimeout),
            callbackGas: self.callback_gas.unwrap_or(d.callbackGas),
            submitterBond: self.submitter_bond.unwrap_or(d.submitterBond),
            challengerBond: self.challenger_bond.unwrap_or(d.challengerBond),
            burnBps: self.burn_bps.unwrap_or(d.burnBps),
        }
    }
}

/// Deploy `Step`, `ModelRegistry` and `OptimisticML` (whose constructor deploys the
/// `HandoverVerifier`) from `client`'s account, one transaction after the other, and
/// describe the result; `rpc` is recorded as the URL later commands use.
pub async fn deploy_contracts(client: &Client, rpc: &str, cfg: IOptimisticML::Config) -> Result<Deployment> {
    let chain_id = client.chain_id().await?;
    let created = |r: &TransactionReceipt, what: &str| {
        r.contract_address.ok_or_else(|| anyhow!("{what}: tx {} created no contract", r.transaction_hash))
    };
    let r = client.send(None, creation_code("Step.sol", "Step")?, U256::ZERO, "deploy Step").await?;
    let step = created(&r, "deploy Step")?;
    let code = creation_code("ModelRegistry.sol", "ModelRegistry")?;
    let r = client.send(None, code, U256::ZERO, "deploy ModelRegistry").await?;
    let registry = created(&r, "deploy ModelRegistry")?;
    let mut code = creation_code("OptimisticML.sol", "OptimisticML")?;
    code.extend((registry, step, cfg.clone()).abi_encode_params());
    let r = client.send(None, code, U256::ZERO, "deploy OptimisticML").await?;
    let game = created(&r, "deploy OptimisticML")?;
    let block = r.block_number.unwrap_or_default();
    let handover_verifier = client.view(game, &IHandoverGetter::handoverVerifierCall {}).await?;
    Ok(Deployment {
        rpc: rpc.to_string(),
        chain_id,
        deployer: client.from()?,
        block,
        step,
        registry,
        game,
        handover_verifier,
        config: ConfigJson::from(&cfg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_flags_replace_only_their_fields() {
        let a = ConfigArgs { window: Some(5), burn_bps: Some(7), ..ConfigArgs::default() };
        let c = a.config(&CHAIN_DEFAULTS);
        assert_eq!((c.challengeWindow, c.burnBps), (5, 7));
        assert_eq!((c.arity, c.clock, c.submitterBond), (16, 3_600, 100_000_000_000_000_000));
        let d = ConfigArgs::default().config(&DEVNET_DEFAULTS);
        assert_eq!((d.challengeWindow, d.clock, d.requestTimeout, d.arity, d.vmDepth), (120, 600, 3_600, 16, 32));
    }
}
