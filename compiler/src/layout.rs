//! The node image layout (`docs/spec/node-image.md`): fixed windows of the 4 GiB address
//! space, each region placed at the start of its window, so that a region of `2^k` leaves
//! sits at an address aligned to `32 * 2^k` and its `bytes_root` is the root of the memory
//! subtree that holds it. [`ImageRoots::memory_root`] computes the image's memory root from
//! the region roots and lengths alone (what the contract repeats).

use opml_merkle::{hash_pair, padded_leaf_count, zero_hash, Hash};
use opml_vm::{State, Status};

/// Height of the memory tree (2^27 leaves of 32 bytes).
pub const TREE_HEIGHT: usize = 27;
/// Kernel code, at address 0 (`pc = 0`).
pub const CODE_BASE: u32 = 0x0000_0000;
/// Size of the code window.
pub const CODE_WINDOW: u32 = 1 << 20;
/// Kernel argument blob (`a0` points here).
pub const PARAM_BASE: u32 = 0x0010_0000;
/// Size of the parameter window.
pub const PARAM_WINDOW: u32 = 1 << 20;
/// Scratch memory (zero at start); the stack grows down from its end.
pub const SCRATCH_BASE: u32 = 0x1000_0000;
/// Size of each tensor window and of the scratch window (256 MiB).
pub const TENSOR_WINDOW: u32 = 1 << 28;
/// Bytes at the top of the scratch window kept for the stack.
pub const STACK_BYTES: u32 = 1 << 20;
/// Initial stack pointer (end of the scratch window).
pub const STACK_TOP: u32 = SCRATCH_BASE + TENSOR_WINDOW;
/// First input window; input `i` is at `INPUT_BASE + i * TENSOR_WINDOW`.
pub const INPUT_BASE: u32 = 0x2000_0000;
/// Most inputs a node can have.
pub const MAX_INPUTS: usize = 8;
/// First weight window; weight `i` is at `WEIGHT_BASE + i * TENSOR_WINDOW`.
pub const WEIGHT_BASE: u32 = 0xA000_0000;
/// Most weight tensors a node can have.
pub const MAX_WEIGHTS: usize = 3;
/// The output tensor's window.
pub const OUTPUT_BASE: u32 = 0xF000_0000;

/// Address of input `i`.
pub fn input_addr(i: usize) -> u32 {
    INPUT_BASE + i as u32 * TENSOR_WINDOW
}

/// Address of weight `i`.
pub fn weight_addr(i: usize) -> u32 {
    WEIGHT_BASE + i as u32 * TENSOR_WINDOW
}

/// Height of the subtree holding `len` bytes (`log2` of the padded leaf count).
pub fn region_height(len: usize) -> usize {
    padded_leaf_count(len).trailing_zeros() as usize
}

/// Padded size in bytes of a region of `len` bytes.
pub fn padded_bytes(len: usize) -> usize {
    padded_leaf_count(len) * 32
}

/// A committed region: its root and byte length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionRoot {
    /// `bytes_root` of the region's bytes.
    pub root: Hash,
    /// Byte length (fixes the subtree height).
    pub len: usize,
}

/// Everything the pre-state of a node's run depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRoots {
    /// Kernel code.
    pub code: RegionRoot,
    /// Kernel argument blob.
    pub params: RegionRoot,
    /// Input tensor commitments, in the node's input order.
    pub inputs: Vec<RegionRoot>,
    /// Weight tensor commitments, in the op's weight order.
    pub weights: Vec<RegionRoot>,
    /// Output byte length (the output window is zero at start).
    pub output_len: usize,
}

/// Why a set of regions cannot form an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ImageRoots {
    /// Every written region as `(address, root and length)`, after checking that each fits
    /// its window (the output window, zero at start, is only checked).
    pub fn placed(&self) -> Result<Vec<(u32, RegionRoot)>, LayoutError> {
        if self.inputs.len() > MAX_INPUTS {
            return Err(LayoutError(format!("{} inputs, at most {MAX_INPUTS}", self.inputs.len())));
        }
        if self.weights.len() > MAX_WEIGHTS {
            return Err(LayoutError(format!("{} weights, at most {MAX_WEIGHTS}", self.weights.len())));
        }
        let mut out =
            vec![(CODE_BASE, CODE_WINDOW, "code", self.code), (PARAM_BASE, PARAM_WINDOW, "params", self.params)];
        for (i, r) in self.inputs.iter().enumerate() {
            out.push((input_addr(i), TENSOR_WINDOW, "input", *r));
        }
        for (i, r) in self.weights.iter().enumerate() {
            out.push((weight_addr(i), TENSOR_WINDOW, "weight", *r));
        }
        for (addr, window, what, r) in &out {
            if padded_bytes(r.len) as u64 > *window as u64 {
                return Err(LayoutError(format!(
                    "{what} region at {addr:#010x}: {} bytes do not fit its {window}-byte window",
                    r.len
                )));
            }
        }
        if padded_bytes(self.output_len) as u64 > TENSOR_WINDOW as u64 {
            return Err(LayoutError(format!("output of {} bytes does not fit its window", self.output_len)));
        }
        Ok(out.into_iter().map(|(a, _, _, r)| (a, r)).collect())
    }

    /// The memory root of the image: every region's root at its address, zero elsewhere.
    pub fn memory_root(&self) -> Result<Hash, LayoutError> {
        let placed = self.placed()?;
        let subtrees: Vec<(u64, usize, Hash)> =
            placed.iter().map(|(a, r)| ((*a as u64) >> 5, region_height(r.len), r.root)).collect();
        Ok(sparse_root(&subtrees, TREE_HEIGHT, 0))
    }

    /// The node's VM pre-state (memory root, `pc = CODE_BASE`, `a0 = PARAM_BASE`,
    /// `sp = STACK_TOP`, every other register 0, step 0, running).
    pub fn pre_state(&self) -> Result<State, LayoutError> {
        Ok(State {
            regs: initial_regs(),
            pc: CODE_BASE,
            mem_root: self.memory_root()?,
            step: 0,
            status: Status::Running,
            exit_code: 0,
        })
    }
}

/// The fixed initial registers.
pub fn initial_regs() -> [u32; 32] {
    let mut r = [0u32; 32];
    r[crate::asm::reg::A0 as usize] = PARAM_BASE;
    r[crate::asm::reg::SP as usize] = STACK_TOP;
    r
}

/// Root of the subtree of `height` whose first leaf is `first`, holding the given
/// `(first leaf, height, root)` subtrees (disjoint, each aligned to its size) and zero
/// elsewhere.
fn sparse_root(subtrees: &[(u64, usize, Hash)], height: usize, first: u64) -> Hash {
    let end = first + (1u64 << height);
    let inside: Vec<(u64, usize, Hash)> =
        subtrees.iter().copied().filter(|(l, h, _)| *l >= first && l + (1u64 << h) <= end).collect();
    match inside.as_slice() {
        [] => *zero_hash(height),
        [(l, h, r)] if *h == height && *l == first => *r,
        _ => {
            let half = 1u64 << (height - 1);
            hash_pair(&sparse_root(&inside, height - 1, first), &sparse_root(&inside, height - 1, first + half))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opml_merkle::bytes_root;
    use proptest::prelude::*;

    fn region(bytes: &[u8]) -> RegionRoot {
        RegionRoot { root: bytes_root(bytes), len: bytes.len() }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The root computed from region roots alone equals the VM's memory root of the
        /// image written byte by byte.
        #[test]
        fn memory_root_matches_the_vm(
            code in proptest::collection::vec(any::<u8>(), 0..300),
            params in proptest::collection::vec(any::<u8>(), 0..200),
            inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..4),
            weights in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5000), 0..3),
            output_len in 0usize..10_000,
        ) {
            let roots = ImageRoots {
                code: region(&code),
                params: region(&params),
                inputs: inputs.iter().map(|b| region(b)).collect(),
                weights: weights.iter().map(|b| region(b)).collect(),
                output_len,
            };
            let mut m = opml_vm::Machine::new();
            m.memory_mut().write_bytes(CODE_BASE, &code);
            m.memory_mut().write_bytes(PARAM_BASE, &params);
            for (i, b) in inputs.iter().enumerate() { m.memory_mut().write_bytes(input_addr(i), b); }
            for (i, b) in weights.iter().enumerate() { m.memory_mut().write_bytes(weight_addr(i), b); }
            prop_assert_eq!(roots.memory_root().unwrap(), m.memory_mut().root());
        }
    }

    #[test]
    fn empty_image_is_the_zero_tree() {
        let empty = RegionRoot { root: bytes_root(&[]), len: 0 };
        let roots = ImageRoots { code: empty, params: empty, inputs: vec![], weights: vec![], output_len: 0 };
        assert_eq!(roots.memory_root().unwrap(), *zero_hash(TREE_HEIGHT));
    }

    #[test]
    fn oversized_regions_are_rejected() {
        let big = RegionRoot { root: [0; 32], len: CODE_WINDOW as usize + 1 };
        let ok = RegionRoot { root: bytes_root(&[]), len: 0 };
        let roots = ImageRoots { code: big, params: ok, inputs: vec![], weights: vec![], output_len: 0 };
        assert!(roots.memory_root().is_err());
        let roots = ImageRoots { code: ok, params: ok, inputs: vec![ok; 9], weights: vec![], output_len: 0 };
        assert!(roots.memory_root().is_err());
    }

    #[test]
    fn windows_are_disjoint_and_aligned() {
        let mut w: Vec<(u64, u64)> =
            vec![(CODE_BASE as u64, CODE_WINDOW as u64), (PARAM_BASE as u64, PARAM_WINDOW as u64)];
        w.push((SCRATCH_BASE as u64, TENSOR_WINDOW as u64));
        w.extend((0..MAX_INPUTS).map(|i| (input_addr(i) as u64, TENSOR_WINDOW as u64)));
        w.extend((0..MAX_WEIGHTS).map(|i| (weight_addr(i) as u64, TENSOR_WINDOW as u64)));
        w.push((OUTPUT_BASE as u64, TENSOR_WINDOW as u64));
        for (i, (a, s)) in w.iter().enumerate() {
            assert_eq!(a % s, 0, "window {i} not aligned");
            assert!(a + s <= 1 << 32);
            for (b, t) in &w[i + 1..] {
                assert!(a + s <= *b || b + t <= *a, "windows overlap");
            }
        }
    }
}
