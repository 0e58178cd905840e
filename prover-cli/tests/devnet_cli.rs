//! `opml devnet up | status | down` with a private opml home (`OPML_HOME`, a temp dir) and
//! `--port 0` (any free port, as anvil takes it): up deploys, chain commands find the
//! deployment by themselves, a second up is refused, down stops exactly the recorded anvil
//! (and saves its chain, which the next up resumes, on another port), and a record whose
//! process is gone or is another program is never signalled. Every anvil started is killed
//! by a guard even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder};
use opml_cli::anvil::ANY_PORT;
use serde_json::Value;

/// anvil's dev account 1 (a public test key).
const KEY1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name).to_str().unwrap().to_string()
}

/// A private opml home; the anvils started in it are killed on drop.
struct Home {
    dir: tempfile::TempDir,
    pids: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Home {
    fn drop(&mut self) {
        for &pid in self.pids.borrow().iter() {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains("anvil") {
                // SAFETY: plain syscall on a pid that is, as just checked, an anvil.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

impl Home {
    fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap(), pids: Default::default() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `opml <args>` in this home, run from it (no `./deployment.json` unless written there).
    fn opml(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_opml"))
            .args(args)
            .env("OPML_HOME", self.path())
            .env_remove("OPML_DEPLOYMENT")
            .env_remove("OPML_KEY")
            .current_dir(self.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let o = self.opml(args);
        assert!(o.status.success(), "opml {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("opml {args:?}: not JSON ({e})"))
    }

    /// `opml devnet up --port P <more> --json`, its anvil guarded.
    fn up(&self, port: u16, more: &[&str]) -> Value {
        let p = port.to_string();
        let mut args = vec!["devnet", "up", "--port", &p, "--json"];
        args.extend_from_slice(more);
        let v = self.json(&args);
        self.pids.borrow_mut().push(v["pid"].as_u64().unwrap() as u32);
        v
    }

    fn register(&self) -> Value {
        self.json(&["chain", "register", &fixture("mlp.opml"), "--key", KEY1, "--json"])
    }
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap().trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn up_status_a_chain_command_then_down_and_up_again_resumes() {
    let home = Home::new();
    let v = home.up(ANY_PORT, &[]);
    let port = v["port"].as_u64().unwrap();
    assert_ne!(port, u64::from(ANY_PORT), "the port anvil took is reported");
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(
        (v["rpc"].as_str(), v["chain_id"].as_u64(), v["resumed"].as_bool()),
        (Some(&*url), Some(31337), Some(false))
    );
    let pid = v["pid"].as_u64().unwrap();
    assert!(running(pid));

    // The accounts printed are the ones anvil funds, in its order.
    let p = ProviderBuilder::new().connect_http(url.parse().unwrap());
    let funded = p.get_accounts().await.unwrap();
    let printed: Vec<Address> =
        v["accounts"].as_array().unwrap().iter().map(|a| a["address"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(printed, funded);
    assert!(v["accounts_warning"].as_str().unwrap().contains("never use them"));

    // The deployment file is in the home, with the devnet's demo configuration.
    let file = home.path().join("devnet/deployment.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(d, v["deployment"]);
    let c = &d["config"];
    assert_eq!(
        (c["arity"].as_u64(), c["challenge_window"].as_u64(), c["clock"].as_u64()),
        (Some(16), Some(120), Some(600))
    );
    let game: Address = d["game"].as_str().unwrap().parse().unwrap();
    assert!(!p.get_code_at(game).await.unwrap().is_empty());

    let s = home.json(&["devnet", "status", "--json"]);
    assert_eq!(
        (s["running"].as_bool(), s["pid"].as_u64(), s["chain_id"].as_u64()),
        (Some(true), Some(pid), Some(31337))
    );
    // Three contract creations, one block each (anvil mines every transaction).
    assert_eq!(s["block"].as_u64(), Some(3));
    assert_eq!(s["deployment"], d);

    // A chain command without --deployment uses the devnet's.
    let r = home.register();
    assert!(r["tx"].is_string(), "{r}");

    // A second devnet in the same home is refused while the first runs.
    let o = home.opml(&["devnet", "up", "--port", "0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("already running") && err.contains("opml devnet down"), "{err}");
    assert!(running(pid));

    let down = home.json(&["devnet", "down", "--json"]);
    assert_eq!(
        (down["stopped"].as_bool(), down["pid"].as_u64(), down["killed"].as_bool()),
        (Some(true), Some(pid), Some(false))
    );
    assert!(!running(pid));
    assert!(home.path().join("devnet/state.json").is_file(), "anvil saved its chain");
    let s = home.json(&["devnet", "status", "--json"]);
    assert_eq!(s["running"].as_bool(), Some(false));
    let o = home.opml(&["devnet", "down"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no devnet is running"));

    // Up again (on whatever port anvil takes now): the saved chain, the same contracts, the
    // model still registered.
    let v = home.up(ANY_PORT, &[]);
    assert_eq!((v["resumed"].as_bool(), v["deployment_kept"].as_bool()), (Some(true), Some(true)));
    assert_eq!(v["deployment"]["game"], d["game"]);
    assert_eq!(home.register()["tx"], Value::Null, "registered before the restart");
    home.json(&["devnet", "down", "--json"]);

    // Up --fresh: a new chain where the model is not registered.
    let v = home.up(ANY_PORT, &["--fresh"]);
    assert_eq!(v["resumed"].as_bool(), Some(false));
    assert!(home.register()["tx"].is_string());
    home.json(&["devnet", "down", "--json"]);
}

#[test]
fn a_dead_or_foreign_pid_in_the_record_is_never_signalled() {
    let home = Home::new();
    let v = home.up(ANY_PORT, &[]);
    let pid = v["pid"].as_u64().unwrap();
    // anvil dies behind the devnet's back.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let start = std::time::Instant::now();
    while running(pid) {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = home.json(&["devnet", "status", "--json"]);
    assert_eq!(s["running"].as_bool(), Some(false));
    assert!(s["reason"].as_str().unwrap().contains("has exited"), "{s}");

    // The record now names a live process that is not anvil: down leaves it alone.
    let record = home.path().join("devnet/devnet.json");
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    r["pid"] = sleeper.id().into();
    std::fs::write(&record, r.to_string()).unwrap();
    let down = home.json(&["devnet", "down", "--json"]);
    assert_eq!(down["stopped"].as_bool(), Some(false));
    assert!(down["reason"].as_str().unwrap().contains("another process"), "{down}");
    assert!(sleeper.try_wait().unwrap().is_none(), "the foreign process still runs");
    assert!(!record.exists(), "the stale record is gone");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    // A stale record does not block up.
    std::fs::write(&record, r.to_string()).unwrap();
    let v = home.up(ANY_PORT, &[]);
    assert!(running(v["pid"].as_u64().unwrap()));
    home.json(&["devnet", "down", "--json"]);
}

#[test]
fn without_any_deployment_file_the_error_says_what_was_tried() {
    let home = Home::new();
    let o = home.opml(&["chain", "show", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    for tried in ["--deployment", "$OPML_DEPLOYMENT", "./deployment.json", "devnet/deployment.json", "opml devnet up"] {
        assert!(err.contains(tried), "{tried}: {err}");
    }
    // ./deployment.json comes before the devnet's, $OPML_DEPLOYMENT before both.
    std::fs::write(home.path().join("deployment.json"), "{}").unwrap();
    let o = home.opml(&["chain", "show", "1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("deployment.json: not a deployment file"));
    let o = Command::new(env!("CARGO_BIN_EXE_opml"))
        .args(["chain", "show", "1"])
        .env("OPML_HOME", home.path())
        .env("OPML_DEPLOYMENT", home.path().join("elsewhere.json"))
        .current_dir(home.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("elsewhere.json"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_missing_anvil_is_reported_with_what_was_tried() {
    let home = Home::new();
    let o = Command::new(env!("CARGO_BIN_EXE_opml"))
        .args(["devnet", "up", "--port", "0"])
        .env("OPML_HOME", home.path())
        .env("OPML_ANVIL", home.path().join("no-anvil"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("anvil not found") && err.contains("no-anvil"), "{err}");
    assert!(!home.path().join("devnet/devnet.json").exists());
}
