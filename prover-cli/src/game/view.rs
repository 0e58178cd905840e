//! What a player believes: a hash at every point of the interval being dissected.

use opml_merkle::Hash;

use crate::game::GameError;

/// A player's view of one level of the game: graph states `S_i` (points are node counts)
/// or VM state hashes (points are step numbers).
pub trait View {
    /// The hash this player holds at `point`.
    fn hash_at(&mut self, point: u64) -> Result<Hash, GameError>;
}
