//! The library side of the `opml` command line: the off-chain dispute-game client
//! ([`game`]), used by the tests and, later, by the chain commands.

pub mod anvil;
pub mod game;
