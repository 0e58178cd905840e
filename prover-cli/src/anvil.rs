//! A local anvil node for the devnet, the demo and the tests: found where `scripts/setup.sh`
//! installs it (or `$OPML_ANVIL`, or `PATH`), started on 127.0.0.1 with its output appended
//! to a log file, ready once it accepts connections, stopped with SIGTERM (on which anvil
//! writes its `--state` file) and killed only if it does not exit.
//!
//! ```no_run
//! use opml_cli::anvil::{Anvil, ANY_PORT};
//! # fn main() -> Result<(), opml_cli::anvil::AnvilError> {
//! let dir = std::env::temp_dir();
//! let node = Anvil::spawn(ANY_PORT, Some(&dir.join("state.json")), &dir.join("anvil.log"))?;
//! println!("{}", node.url()); // http://127.0.0.1:PORT
//! node.stop()?; // the state file now holds the chain; spawn again with it to resume
//! # Ok(())
//! # }
//! ```

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

/// anvil's ten funded dev accounts' keys, account 0 first: those of its default mnemonic
/// ("test test test test test test test test test test test junk", m/44'/60'/0'/0/0..9).
/// Public, printed by every anvil: never use them (or send anything to them) on a real
/// chain. The devnet, the demo and the tests sign with them.
pub const DEV_KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Environment variable naming the anvil binary to use.
pub const ANVIL_ENV: &str = "OPML_ANVIL";
/// The only address anvil listens on.
pub const LOCALHOST: &str = "127.0.0.1";
/// The port that asks anvil to listen on any free port (the OS's choice, read from
/// anvil's `Listening on 127.0.0.1:PORT` line): no other process can take it between
/// the choice and the bind, as it can a port from [`free_port`].
pub const ANY_PORT: u16 = 0;
/// How long anvil may take to accept connections (it loads its state file first).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long anvil may take to exit after SIGTERM (it writes its state file first).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// How much of the log an error quotes.
const LOG_TAIL_BYTES: u64 = 2_000;

/// Why anvil could not be found, started or stopped.
#[derive(Debug, Error)]
pub enum AnvilError {
    #[error(
        "anvil not found: tried {tried}; install it with `bash scripts/setup.sh install_foundry`, \
         or set {ANVIL_ENV} to an anvil binary"
    )]
    NotFound { tried: String },
    #[error("port {port} on {LOCALHOST} is not free: {source}")]
    PortInUse { port: u16, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("anvil ({bin}) exited ({status}) before accepting connections on {}; end of {log}:\n{tail}", shown(*port))]
    Exited { bin: String, status: ExitStatus, port: u16, log: String, tail: String },
    #[error("anvil ({bin}) did not accept connections on {} within {secs} s (log: {log})", shown(*port))]
    NotReady { bin: String, port: u16, secs: u64, log: String },
}

/// `port N`, or for [`ANY_PORT`] what it means.
fn shown(port: u16) -> String {
    if port == ANY_PORT {
        "any port (it printed none)".to_string()
    } else {
        format!("port {port}")
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> AnvilError {
    let what = what.into();
    move |source| AnvilError::Io { what, source }
}

/// The npm package directory of this platform's anvil (`@foundry-rs/anvil-<os>-<arch>`).
fn npm_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        os => os,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        arch => arch,
    };
    format!("{os}-{arch}")
}

/// The anvil binary: `$OPML_ANVIL`, else the one `scripts/setup.sh` installs under this
/// source tree's `contracts/node_modules`, else `anvil` on `PATH`.
pub fn find_anvil() -> Result<PathBuf, AnvilError> {
    if let Some(p) = std::env::var_os(ANVIL_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(AnvilError::NotFound { tried: format!("${ANVIL_ENV} = {} (no such file)", p.display()) })
        };
    }
    let npm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contracts/node_modules/@foundry-rs")
        .join(format!("anvil-{}", npm_platform()))
        .join("bin/anvil");
    if npm.is_file() {
        return Ok(npm);
    }
    let on_path =
        std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join("anvil")).find(|p| p.is_file());
    on_path.ok_or_else(|| AnvilError::NotFound {
        tried: format!("${ANVIL_ENV} (not set), {}, `anvil` on PATH", npm.display()),
    })
}

/// A port on 127.0.0.1 that was free a moment ago (the OS's choice). Another process may
/// take it before it is used: to start anvil, prefer [`ANY_PORT`].
pub fn free_port() -> Result<u16, AnvilError> {
    let l = TcpListener::bind((LOCALHOST, 0)).map_err(io_err(format!("binding {LOCALHOST}:0")))?;
    Ok(l.local_addr().map_err(io_err("reading a bound socket's address"))?.port())
}

/// Where anvil runs relative to the process that starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// In the caller's process group, so that a Ctrl-C stops both; stopped when the handle
    /// is dropped.
    Attached,
    /// In a session of its own, so that it outlives the caller and its terminal; stopped
    /// when the handle is dropped until [`Anvil::detach`] lets it go.
    Background,
}

/// A running anvil started by this process.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    argv: Vec<String>,
    stop_on_drop: bool,
}

impl Anvil {
    /// Start anvil on `port` of 127.0.0.1, attached to this process (see
    /// [`Lifetime::Attached`]).
    pub fn spawn(port: u16, state: Option<&Path>, log: &Path) -> Result<Anvil, AnvilError> {
        Self::start(port, state, log, Lifetime::Attached)
    }

    /// Start anvil in the background (see [`Lifetime::Background`]).
    pub fn spawn_background(port: u16, state: Option<&Path>, log: &Path) -> Result<Anvil, AnvilError> {
        Self::start(port, state, log, Lifetime::Background)
    }

    /// Start anvil on `port` of 127.0.0.1 ([`ANY_PORT`]: any free one) with its stdout and
    /// stderr appended to `log`; with `state`, the chain is loaded from that file if it
    /// exists and written to it when anvil is stopped (anvil's `--state`). Returns once
    /// anvil accepts connections.
    pub fn start(port: u16, state: Option<&Path>, log: &Path, lifetime: Lifetime) -> Result<Anvil, AnvilError> {
        let bin = find_anvil()?;
        // Refuse a busy port here: anvil would exit with an error, or worse, the readiness
        // check would connect to whatever holds the port.
        if port != ANY_PORT {
            drop(TcpListener::bind((LOCALHOST, port)).map_err(|source| AnvilError::PortInUse { port, source })?);
        }
        let mut argv = vec![bin.display().to_string(), "--host".into(), LOCALHOST.into(), "--port".into()];
        argv.push(port.to_string());
        if let Some(s) = state {
            argv.extend(["--state".to_string(), s.display().to_string()]);
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_err(format!("opening anvil's log {}", log.display())))?;
        let err = out.try_clone().map_err(io_err(format!("opening anvil's log {}", log.display())))?;
        // This run's output starts here (the log may hold earlier runs').
        let log_start = out.metadata().map_err(io_err(format!("reading anvil's log {}", log.display())))?.len();
        let mut cmd = Command::new(&bin);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(out).stderr(err);
        if lifetime == Lifetime::Background {
            // SAFETY: runs in the forked child before exec; setsid is async-signal-safe and
            // touches no memory shared with the parent.
            unsafe {
                cmd.pre_exec(|| if libc::setsid() == -1 { Err(io::Error::last_os_error()) } else { Ok(()) });
            }
        }
        let child = cmd.spawn().map_err(io_err(format!("starting {}", bin.display())))?;
        let mut a = Anvil { child, port, argv, stop_on_drop: true };
        a.wait_ready(log, log_start)?;
        Ok(a)
    }

    /// Poll until anvil accepts connections (on [`ANY_PORT`], first until this run's part
    /// of the log, from byte `log_start`, names its port); an exit or the timeout is an
    /// error (and the handle, dropped, stops the process).
    fn wait_ready(&mut self, log: &Path, log_start: u64) -> Result<(), AnvilError> {
        let start = Instant::now();
        loop {
            let exited = self.child.try_wait().map_err(io_err(format!("waiting for anvil (pid {})", self.pid())))?;
            if let Some(status) = exited {
                let tail = log_tail(log);
                return Err(AnvilError::Exited {
                    bin: self.argv[0].clone(),
                    status,
                    port: self.port,
                    log: log.display().to_string(),
                    tail,
                });
            }
            if self.port == ANY_PORT {
                self.port = listening_port(&log_from(log, log_start)).unwrap_or(ANY_PORT);
            }
            if self.port != ANY_PORT && TcpStream::connect((LOCALHOST, self.port)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(AnvilError::NotReady {
                    bin: self.argv[0].clone(),
                    port: self.port,
                    secs: READY_TIMEOUT.as_secs(),
                    log: log.display().to_string(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Its JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://{LOCALHOST}:{}", self.port)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with (program first), as `/proc/PID/cmdline` shows it.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Let it run on after this handle is gone (a background anvil outlives this process);
    /// its pid, to stop it later.
    pub fn detach(mut self) -> u32 {
        self.stop_on_drop = false;
        self.pid()
    }

    /// Stop it: SIGTERM (anvil writes its state file, if any, and exits), then SIGKILL if
    /// it has not exited within 10 s. Its exit status.
    pub fn stop(mut self) -> Result<ExitStatus, AnvilError> {
        self.stop_on_drop = false;
        self.terminate()
    }

    fn terminate(&mut self) -> Result<ExitStatus, AnvilError> {
        let pid = self.pid();
        if let Some(s) = self.child.try_wait().map_err(io_err(format!("waiting for anvil (pid {pid})")))? {
            return Ok(s);
        }
        // SAFETY: plain syscall on our own child's pid, which stays reserved until we reap it.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            if let Some(s) = self.child.try_wait().map_err(io_err(format!("waiting for anvil (pid {pid})")))? {
                return Ok(s);
            }
            std::thread::sleep(POLL);
        }
        self.child.kill().map_err(io_err(format!("killing anvil (pid {pid})")))?;
        self.child.wait().map_err(io_err(format!("waiting for anvil (pid {pid})")))
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if self.stop_on_drop {
            // Nothing to report to in a destructor; the process is killed at worst.
            let _ = self.terminate();
        }
    }
}

/// The port of anvil's `Listening on 127.0.0.1:PORT` line in `text`, if any.
fn listening_port(text: &str) -> Option<u16> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix("Listening on "))?;
    line.rsplit_once(':')?.1.trim().parse().ok().filter(|&p| p != ANY_PORT)
}

/// A log from byte `start` on ("" if it cannot be read).
fn log_from(path: &Path, start: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let _ = f.seek(SeekFrom::Start(start));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last lines of a log, for an error message ("" if it cannot be read).
fn log_tail(path: &Path) -> String {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    log_from(path, len.saturating_sub(LOG_TAIL_BYTES)).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_port_is_refused_before_anvil_starts() {
        find_anvil().expect("anvil is installed: run scripts/setup.sh install_foundry");
        let held = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let e = Anvil::spawn(port, None, &dir.path().join("log")).unwrap_err();
        assert!(matches!(e, AnvilError::PortInUse { port: p, .. } if p == port), "{e}");
    }

    #[test]
    fn the_listening_port_is_read_from_anvils_line() {
        assert_eq!(listening_port("\n   Listening on 127.0.0.1:40633\n"), Some(40633));
        assert_eq!(listening_port("Available Accounts\n==================\n"), None);
        assert_eq!(listening_port("Listening on 127.0.0.1:0\n"), None);
        assert_eq!(listening_port("Listening on 127.0.0.1:\n"), None);
        let e = |port| AnvilError::NotReady { bin: "anvil".into(), port, secs: 30, log: "log".into() }.to_string();
        assert!(e(ANY_PORT).contains("on any port (it printed none) within"), "{}", e(ANY_PORT));
        assert!(e(8545).contains("on port 8545 within"), "{}", e(8545));
    }

    /// Two anvils on any port, one log: each finds its own port, and the second does not
    /// take the first's line (earlier in the log) for its own.
    #[test]
    fn anvils_on_any_port_find_their_own_ports() {
        find_anvil().expect("anvil is installed: run scripts/setup.sh install_foundry");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let a = Anvil::spawn(ANY_PORT, None, &log).unwrap();
        let b = Anvil::spawn(ANY_PORT, None, &log).unwrap();
        assert!(a.port() != ANY_PORT && b.port() != ANY_PORT && a.port() != b.port(), "{} {}", a.port(), b.port());
        let text = std::fs::read_to_string(&log).unwrap();
        for n in [&a, &b] {
            assert!(text.contains(&format!("Listening on 127.0.0.1:{}", n.port())), "{text}");
            TcpStream::connect((LOCALHOST, n.port())).unwrap();
        }
    }
}
