//! What `/proc` says about a process: whether it still runs, its command line and its
//! start time. A pid alone may have been reused by the time `opml devnet down` runs; the
//! pid with its start time and command line names the anvil `up` started.

use std::path::PathBuf;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);

fn proc_file(pid: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces and
/// parentheses, so it is cut at the last `)`): field 3 (state) first.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(proc_file(pid, "stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
pub fn running(pid: u32) -> bool {
    match stat_fields(pid) {
        Some(f) => !matches!(f.first().map(String::as_str), Some("Z" | "X" | "x") | None),
        None => false,
    }
}

/// The process's start time, clock ticks after boot (`/proc/PID/stat` field 22).
pub fn start_ticks(pid: u32) -> Option<u64> {
    // Field 22 is the 20th after the command name (fields 3, 4, ...).
    stat_fields(pid)?.get(22 - 3)?.parse().ok()
}

/// The process's command line (program first), as it was exec'd.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = std::fs::read(proc_file(pid, "cmdline")).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    Some(text.split_terminator('\0').map(str::to_string).collect())
}

/// Send `signal` to `pid`.
pub fn signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: a plain syscall; the caller has checked that pid is the process it means.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until `pid` no longer runs; false if it still does after `limit`.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while running(pid) {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_described_and_a_reaped_child_is_gone() {
        let me = std::process::id();
        assert!(running(me));
        let argv = cmdline(me).unwrap();
        let exe = std::env::args().next().unwrap();
        assert_eq!(argv[0], exe);
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        // The spawn returns while exec still sets up the new image (its argv shows a moment later).
        let start = Instant::now();
        while cmdline(pid).unwrap().is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(POLL);
        }
        assert_eq!(cmdline(pid).unwrap(), ["sleep", "30"]);
        // A child starts after its parent.
        assert!(start_ticks(pid).unwrap() >= start_ticks(me).unwrap());
        signal(pid, libc::SIGTERM).unwrap();
        child.wait().unwrap();
        assert!(!running(pid));
        assert!(wait_gone(pid, Duration::ZERO));
    }
}
