//! Who signs: a raw private key (`--key` or `$OPML_KEY`, meant for devnets) or an encrypted
//! JSON keystore (Web3 Secret Storage, as `cast wallet new` and geth write them) unlocked
//! with a password from a file or a prompt without echo. Keys are never printed.

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use alloy::signers::local::{LocalSignerError, PrivateKeySigner};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use eth_keystore::{EthKeystore, KdfparamsType, KeystoreError};

/// Environment variable holding the private key when neither `--key` nor `--keystore` is given.
pub const KEY_ENV: &str = "OPML_KEY";

/// The only cipher of Web3 Secret Storage v3.
const KEYSTORE_CIPHER: &str = "aes-128-ctr";
/// The derived key's length the MAC and the AES key are cut from (16 + 16 bytes).
const MIN_DKLEN: u8 = 32;
/// AES-128-CTR's IV length.
const IV_LEN: usize = 16;

/// The signer flags of every signing command.
#[derive(Clone, Default, Args)]
pub struct KeyArgs {
    /// Private key (hex); default $OPML_KEY. For devnets: on a real chain use --keystore.
    #[arg(long, value_name = "HEX", group = "key_source")]
    pub key: Option<String>,
    /// Encrypted JSON keystore (Web3 Secret Storage, as `cast wallet new` writes).
    #[arg(long, value_name = "FILE", group = "key_source")]
    pub keystore: Option<PathBuf>,
    /// The keystore's password: this file's first line (default: a prompt on the terminal).
    #[arg(long, value_name = "FILE", requires = "keystore")]
    pub password_file: Option<PathBuf>,
}

// By hand, so that `{:?}` of a command line never shows the key.
impl fmt::Debug for KeyArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyArgs")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("keystore", &self.keystore)
            .field("password_file", &self.password_file)
            .finish()
    }
}

impl KeyArgs {
    /// The signer these flags name (see [`signer`]).
    pub fn signer(&self) -> Result<PrivateKeySigner> {
        signer(self.key.as_deref(), self.keystore.as_deref(), self.password_file.as_deref())
    }
}

/// The signer of `--keystore FILE` (password from `password_file`, else a prompt when
/// stdin is a terminal), else of `--key HEX`, else of `$OPML_KEY`.
pub fn signer(key: Option<&str>, keystore: Option<&Path>, password_file: Option<&Path>) -> Result<PrivateKeySigner> {
    match (key, keystore) {
        (Some(_), Some(_)) => bail!("--key and --keystore name two signers: pass one"),
        (_, Some(path)) => from_keystore(path, password_file),
        (key, None) => {
            if password_file.is_some() {
                bail!("--password-file unlocks a --keystore, and none was given");
            }
            from_key(key)
        }
    }
}

/// The signer of `--key` (or `$OPML_KEY`): 32 bytes, hex, with or without `0x`.
fn from_key(key: Option<&str>) -> Result<PrivateKeySigner> {
    let key = match key {
        Some(k) => k.to_string(),
        None => std::env::var(KEY_ENV)
            .map_err(|_| anyhow!("no signer: pass --keystore FILE or --key HEX, or set {KEY_ENV}"))?,
    };
    // The parse error does not contain the key; keep it that way.
    key.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|e| anyhow!("--key / {KEY_ENV}: not a private key (32 bytes, hex): {e}"))
}

fn from_keystore(path: &Path, password_file: Option<&Path>) -> Result<PrivateKeySigner> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading keystore {shown}"))?;
    check_keystore(&text).with_context(|| format!("{shown} is not a keystore (Web3 Secret Storage JSON)"))?;
    let password = password(path, password_file)?;
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| match e {
        LocalSignerError::EthKeystoreError(KeystoreError::MacMismatch) => {
            anyhow!("wrong password for keystore {shown}")
        }
        LocalSignerError::EcdsaError(_) => anyhow!("keystore {shown}: the decrypted key is not a secp256k1 key"),
        other => anyhow!("keystore {shown}: {other}"),
    })
}

/// The fields decryption slices without checking (a short IV or derived key would panic
/// there rather than fail).
fn check_keystore(text: &str) -> Result<()> {
    let ks: EthKeystore = serde_json::from_str(text)?;
    let c = &ks.crypto;
    if c.cipher != KEYSTORE_CIPHER {
        bail!("crypto.cipher is `{}`, only {KEYSTORE_CIPHER} is supported", c.cipher);
    }
    if c.cipherparams.iv.len() != IV_LEN {
        bail!("crypto.cipherparams.iv has {} bytes, {IV_LEN} expected", c.cipherparams.iv.len());
    }
    let dklen = match &c.kdfparams {
        KdfparamsType::Pbkdf2 { dklen, .. } | KdfparamsType::Scrypt { dklen, .. } => *dklen,
    };
    if dklen < MIN_DKLEN {
        bail!("crypto.kdfparams.dklen is {dklen}, at least {MIN_DKLEN} expected");
    }
    Ok(())
}

/// The keystore's password: the first line of `password_file` (its line ending removed),
/// else typed at a prompt without echo.
fn password(keystore: &Path, password_file: Option<&Path>) -> Result<String> {
    if let Some(f) = password_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading password file {}", f.display()))?;
        let line = text.split('\n').next().unwrap_or_default();
        return Ok(line.strip_suffix('\r').unwrap_or(line).to_string());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "keystore {}: no password: pass --password-file FILE (stdin is not a terminal, so no prompt)",
            keystore.display()
        );
    }
    rpassword::prompt_password(format!("password for keystore {}: ", keystore.display()))
        .with_context(|| format!("reading the password of keystore {} from the terminal", keystore.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anvil's dev account 0 (public test key).
    const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn debug_output_never_shows_the_key() {
        let k = KeyArgs { key: Some(KEY0.into()), ..KeyArgs::default() };
        let shown = format!("{k:?}");
        assert!(!shown.contains("ac0974bec39a17e3"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn password_is_the_first_line_without_its_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let ks = dir.path().join("ks.json");
        for (text, want) in [("pw\n", "pw"), ("pw\r\nsecond\n", "pw"), ("pw", "pw"), (" p w \n", " p w "), ("", "")] {
            let f = dir.path().join("pw");
            std::fs::write(&f, text).unwrap();
            assert_eq!(password(&ks, Some(&f)).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn a_keystore_with_a_short_iv_is_refused_before_decryption() {
        let good = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"00112233445566778899aabbccddeeff"},
            "ciphertext":"00","kdf":"scrypt","kdfparams":{"dklen":32,"n":2,"p":1,"r":8,"salt":"00"},"mac":"00"},
            "id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;
        check_keystore(good).unwrap();
        let short_iv = good.replace("00112233445566778899aabbccddeeff", "0011");
        let e = check_keystore(&short_iv).unwrap_err().to_string();
        assert!(e.contains("crypto.cipherparams.iv has 2 bytes"), "{e}");
        let short_dk = good.replace("\"dklen\":32", "\"dklen\":16");
        assert!(check_keystore(&short_dk).unwrap_err().to_string().contains("dklen is 16"));
        assert!(check_keystore("{\"rpc\": \"x\"}").is_err());
    }
}
