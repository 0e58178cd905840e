//! anvil's ten funded dev accounts: the keys of its default mnemonic ("test test test test
//! test test test test test test test junk", m/44'/60'/0'/0/0..9). These keys are public,
//! printed by every anvil and in countless tutorials: anything sent to them on a real chain
//! is taken at once.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};

/// The keys, account 0 first (kept beside the anvil node in the library, which the tests
/// use too).
pub use opml_cli::anvil::DEV_KEYS;

/// The warning printed with the keys.
pub const WARNING: &str =
    "public test keys, known to everyone: never use them (or send anything to them) on a real chain";

/// Dev account `i`'s signer.
pub fn dev_signer(i: usize) -> Result<PrivateKeySigner> {
    let key = DEV_KEYS.get(i).with_context(|| format!("anvil has {} dev accounts, not {}", DEV_KEYS.len(), i + 1))?;
    key.parse().with_context(|| format!("dev key {i} is not a private key"))
}

/// Each dev account's address with its key.
pub fn dev_accounts() -> Result<Vec<(Address, &'static str)>> {
    (0..DEV_KEYS.len()).map(|i| Ok((dev_signer(i)?.address(), DEV_KEYS[i]))).collect()
}
