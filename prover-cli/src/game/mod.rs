//! The off-chain dispute-game client: plain data in, plain data out, no chain access
//! (the tests and the command line move the data to and from the chain).
//!
//! * [`bisect`] — the contract's dissection arithmetic (points, parts, picks);
//! * [`graph`] — phase 1 view: a native run, its slots and graph states (honest or lying);
//! * [`vm`] — phase 2 view: one node's VM run with checkpoints (honest or tampered);
//! * [`fault`] — deliberate faults for tests and demos: a party's [`Run`] of a claim,
//!   honest or lying coherently about one node;
//! * [`handover`] — the handover proof and the contract's checks repeated in Rust;
//! * [`strategy`] — the defender's posts and the challenger's picks;
//! * [`abi`] — the contracts' interface (`sol!`) and conversions of the client's data.

pub mod abi;
pub mod bisect;
mod error;
pub mod fault;
pub mod graph;
pub mod handover;
pub mod strategy;
#[cfg(test)]
mod testdata;
mod view;
pub mod vm;

pub use error::GameError;
pub use fault::{Fault, Run};
pub use graph::GraphView;
pub use handover::{HandoverData, ModelShape, Rejection};
pub use view::View;
pub use vm::{Edit, Tamper, VmView};
