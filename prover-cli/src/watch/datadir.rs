//! The watcher's data directory: which deployment it belongs to, the next block to read,
//! the claims and games seen so far (with verdicts), and one cache folder per game in
//! progress (deleted when the game ends). Everything else is read again from the chain on
//! every pass, so a watcher killed at any moment resumes from here and the chain.
//!
//! ```text
//! DIR/state.json          deployment identity, next block, claims, games (atomic rewrite)
//! DIR/games/<id>/         per-game cache: trace.bin (the run's graph trace), run.json
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::claims::{ClaimRecord, GameRecord};

/// Which deployment a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub chain_id: u64,
    pub game: Address,
    /// The deployment block (logs are read from there) and its hash: a fresh chain that
    /// deploys the same addresses at the same height (`opml devnet up --fresh`) is
    /// another deployment.
    pub block: u64,
    pub block_hash: B256,
    /// The account this watcher signs for.
    pub account: Address,
}

/// What `state.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchState {
    pub identity: Identity,
    /// The first block not read yet.
    pub next_block: u64,
    pub claims: BTreeMap<u64, ClaimRecord>,
    pub games: BTreeMap<u64, GameRecord>,
}

/// A data directory.
#[derive(Debug)]
pub struct DataDir {
    dir: PathBuf,
}

impl DataDir {
    /// Open (create) `dir` for `identity`: the saved state when there is one (refused when
    /// it belongs to another deployment or account), else a fresh state from the
    /// deployment block.
    pub fn open(dir: &Path, identity: &Identity) -> Result<(DataDir, WatchState)> {
        std::fs::create_dir_all(dir.join("games"))
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let d = DataDir { dir: dir.to_path_buf() };
        let path = d.state_path();
        if !path.exists() {
            let s = WatchState {
                identity: identity.clone(),
                next_block: identity.block,
                claims: BTreeMap::new(),
                games: BTreeMap::new(),
            };
            d.save(&s)?;
            return Ok((d, s));
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let s: WatchState = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a watcher state file (written by `opml watch`)", path.display()))?;
        let (a, b) = (&s.identity, identity);
        if (a.chain_id, a.game, a.block, a.block_hash) != (b.chain_id, b.game, b.block, b.block_hash) {
            bail!(
                "data directory {} was written for OptimisticML {} on chain {} (deployed in block {} {}); this \
                 deployment is {} on chain {} (block {} {}): use another --data-dir (or remove this one if that \
                 chain is gone)",
                dir.display(),
                a.game,
                a.chain_id,
                a.block,
                a.block_hash,
                b.game,
                b.chain_id,
                b.block,
                b.block_hash
            );
        }
        if a.account != b.account {
            bail!(
                "data directory {} belongs to the watcher of account {}, this key is {}: one data directory per \
                 account (use another --data-dir)",
                dir.display(),
                a.account,
                b.account
            );
        }
        Ok((d, s))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Write the state atomically (a temporary file renamed over the old one), so that a
    /// kill at any moment leaves either the old or the new state.
    pub fn save(&self, s: &WatchState) -> Result<()> {
        let path = self.state_path();
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(s)?;
        std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
    }

    /// The cache folder of game `id` (created).
    pub fn game_cache(&self, id: u64) -> Result<PathBuf> {
        let p = self.dir.join("games").join(id.to_string());
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(p)
    }

    /// Delete the cache folder of game `id` (the game ended).
    pub fn drop_game_cache(&self, id: u64) -> Result<()> {
        let p = self.dir.join("games").join(id.to_string());
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        Ok(())
    }

    /// The game cache folders present (game ids).
    pub fn cached_games(&self) -> Vec<u64> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("games")) else { return Vec::new() };
        let mut v: Vec<u64> = rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(chain_id: u64, game: u8, account: u8) -> Identity {
        Identity {
            chain_id,
            game: Address::repeat_byte(game),
            block: 3,
            block_hash: B256::repeat_byte(5),
            account: Address::repeat_byte(account),
        }
    }

    #[test]
    fn state_survives_a_reopen_and_other_deployments_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (d, mut s) = DataDir::open(tmp.path(), &id(1, 7, 9)).unwrap();
        assert_eq!(s.next_block, 3, "a fresh watcher reads from the deployment block");
        s.next_block = 42;
        s.games.insert(5, GameRecord { id: 5, claim: 2, challenger: Address::ZERO, block: 40, ended: false });
        d.save(&s).unwrap();
        let (_, again) = DataDir::open(tmp.path(), &id(1, 7, 9)).unwrap();
        assert_eq!(again, s);
        let e = DataDir::open(tmp.path(), &id(2, 7, 9)).unwrap_err().to_string();
        assert!(e.contains("on chain 1") && e.contains("use another --data-dir"), "{e}");
        let e = DataDir::open(tmp.path(), &id(1, 8, 9)).unwrap_err().to_string();
        assert!(e.contains("written for OptimisticML"), "{e}");
        // Same chain id, addresses and height, another chain (a fresh devnet).
        let fresh = Identity { block_hash: B256::repeat_byte(6), ..id(1, 7, 9) };
        let e = DataDir::open(tmp.path(), &fresh).unwrap_err().to_string();
        assert!(e.contains("use another --data-dir"), "{e}");
        let e = DataDir::open(tmp.path(), &id(1, 7, 1)).unwrap_err().to_string();
        assert!(e.contains("belongs to the watcher of account"), "{e}");
        std::fs::write(tmp.path().join("state.json"), "{").unwrap();
        let e = format!("{:#}", DataDir::open(tmp.path(), &id(1, 7, 9)).unwrap_err());
        assert!(e.contains("not a watcher state file"), "{e}");
    }

    #[test]
    fn game_caches_are_created_and_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let (d, _) = DataDir::open(tmp.path(), &id(1, 7, 9)).unwrap();
        std::fs::write(d.game_cache(4).unwrap().join("trace.bin"), b"x").unwrap();
        d.game_cache(12).unwrap();
        assert_eq!(d.cached_games(), vec![4, 12]);
        d.drop_game_cache(4).unwrap();
        assert_eq!(d.cached_games(), vec![12]);
        d.drop_game_cache(4).unwrap();
    }
}
