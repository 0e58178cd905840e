//! The library side of the `opml` command line: the off-chain dispute-game client
//! ([`game`]), used by the tests and by the chain commands, the gas limit moves are sent
//! with ([`gas`]), and a local anvil node ([`anvil`]) for the devnet, the demo and the tests.

pub mod anvil;
pub mod game;
pub mod gas;
