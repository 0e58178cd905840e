//! Signing with an encrypted JSON keystore (`--keystore FILE --password-file FILE`):
//! a keystore written here with alloy deploys the contracts on anvil and registers a model
//! through the command line; wrong passwords, missing or foreign files, two signers at
//! once and a missing password source are refused with the file named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use alloy::signers::local::PrivateKeySigner;
use opml_cli::anvil::{Anvil, ANY_PORT};
use serde_json::Value;

/// anvil's dev account 4 (a public test key).
const KEY: &str = "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
const PASSWORD: &str = "correct horse battery staple";

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name).to_str().unwrap().to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `opml <args>` with no terminal on stdin and no key in the environment.
fn opml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opml")).args(args).env_remove("OPML_KEY").stdin(Stdio::null()).output().unwrap()
}

/// A keystore of `KEY` under `PASSWORD` and a password file (first line, newline-ended).
fn keystore(dir: &Path) -> (PathBuf, PathBuf, PrivateKeySigner) {
    let key = hex::decode(KEY).unwrap();
    let (signer, _) =
        PrivateKeySigner::encrypt_keystore(dir, &mut rand::thread_rng(), &key, PASSWORD, Some("deployer.json"))
            .unwrap();
    let pw = dir.join("password.txt");
    std::fs::write(&pw, format!("{PASSWORD}\nnot part of it\n")).unwrap();
    (dir.join("deployer.json"), pw, signer)
}

#[test]
fn a_keystore_signs_deploy_and_register_on_anvil() {
    let dir = tempfile::tempdir().unwrap();
    let (ks, pw, signer) = keystore(dir.path());
    let node = Anvil::spawn(ANY_PORT, None, &dir.path().join("anvil.log")).unwrap();
    let file = dir.path().join("deployment.json");
    #[rustfmt::skip]
    let o = opml(&[
        "chain", "deploy", "--rpc", &node.url(), "--keystore", path(&ks), "--password-file", path(&pw),
        "--out", path(&file), "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["deployer"].as_str().unwrap().parse::<alloy::primitives::Address>().unwrap(), signer.address());
    #[rustfmt::skip]
    let o = opml(&[
        "chain", "register", &fixture("mlp.opml"), "--deployment", path(&file), "--keystore", path(&ks),
        "--password-file", path(&pw), "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["tx"].is_string(), "{r}");
    for out in [&o.stdout, &o.stderr] {
        assert!(!String::from_utf8_lossy(out).contains(KEY), "the key is never printed");
    }
}

/// Run `opml chain deploy` (the signer is resolved before the node is contacted, so no
/// node is needed) and return its failure message.
fn deploy_error(args: &[&str]) -> String {
    let mut all = vec!["chain", "deploy", "--rpc", "http://127.0.0.1:9", "--out", "/nonexistent/deployment.json"];
    all.extend_from_slice(args);
    let o = opml(&all);
    assert!(!o.status.success(), "opml {all:?} succeeded");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!err.contains(KEY), "the key is never printed: {err}");
    err
}

#[test]
fn bad_keystores_and_passwords_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ks, pw, _) = keystore(dir.path());
    let (ks, pw) = (path(&ks).to_string(), path(&pw).to_string());
    let wrong = dir.path().join("wrong.txt");
    std::fs::write(&wrong, "incorrect horse\n").unwrap();
    let err = deploy_error(&["--keystore", &ks, "--password-file", path(&wrong)]);
    assert!(err.contains(&format!("wrong password for keystore {ks}")), "{err}");

    let missing = dir.path().join("missing.json");
    let err = deploy_error(&["--keystore", path(&missing), "--password-file", &pw]);
    assert!(err.contains(&format!("reading keystore {}", path(&missing))), "{err}");

    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, r#"{"rpc": "http://127.0.0.1:8545", "chain_id": 31337}"#).unwrap();
    let err = deploy_error(&["--keystore", path(&foreign), "--password-file", &pw]);
    assert!(err.contains(&format!("{} is not a keystore", path(&foreign))), "{err}");

    let err = deploy_error(&["--keystore", &ks, "--password-file", path(&dir.path().join("nopw"))]);
    assert!(err.contains("reading password file") && err.contains("nopw"), "{err}");

    // No password file and stdin is not a terminal: no prompt, an error.
    let err = deploy_error(&["--keystore", &ks]);
    assert!(err.contains(&format!("keystore {ks}: no password: pass --password-file")), "{err}");

    // Two signers, or a password file with nothing to unlock: refused by the parser.
    let err = deploy_error(&["--keystore", &ks, "--password-file", &pw, "--key", KEY]);
    assert!(err.contains("--key") && err.contains("cannot be used with"), "{err}");
    let err = deploy_error(&["--password-file", &pw, "--key", KEY]);
    assert!(err.contains("--keystore"), "{err}");
    // Nothing at all.
    let err = deploy_error(&[]);
    assert!(err.contains("no signer: pass --keystore FILE or --key HEX"), "{err}");
}
