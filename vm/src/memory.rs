//! Merkleized 4 GiB memory (docs/spec/merkle.md).
//!
//! The bytes live in one 4 GiB anonymous mapping reserved without backing store, so a load
//! or store is a plain pointer access (no page-table lookup in the interpreter) and pages
//! the program never touches cost nothing. Hashing is lazy: a store only marks its 4 KiB
//! page, and page roots and upper-level nodes are recomputed for marked pages when a root
//! or a proof is asked for. Running without asking for roots is the fast mode.

use std::collections::HashMap;
use std::ptr::NonNull;

use opml_merkle::{hash_pair, hash_pairs, zero_hash, Hash};
use rayon::prelude::*;

/// Page size in bytes.
pub const PAGE_BYTES: usize = 4096;
/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Height of a page's subtree (128 leaves).
pub const PAGE_HEIGHT: usize = 7;
/// Depth of the memory tree (2^27 leaves of 32 bytes).
pub const TREE_DEPTH: usize = 27;
/// Number of pages in the address space.
pub const PAGE_COUNT: usize = 1 << 20;
const SPACE: usize = 1 << 32;
const BITMAP_WORDS: usize = PAGE_COUNT / 64;

/// A Merkle proof for one leaf: the leaf and its 27 siblings, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafProof {
    pub leaf: Hash,
    pub siblings: [Hash; TREE_DEPTH],
}

struct Bitmap(Box<[u64]>);

impl Bitmap {
    fn new() -> Self {
        Bitmap(vec![0u64; BITMAP_WORDS].into_boxed_slice())
    }
    #[inline(always)]
    fn get(&self, i: u32) -> bool {
        self.0[(i >> 6) as usize] & (1u64 << (i & 63)) != 0
    }
    #[inline(always)]
    fn set(&mut self, i: u32) {
        self.0[(i >> 6) as usize] |= 1u64 << (i & 63);
    }
    #[inline(always)]
    fn clear(&mut self, i: u32) {
        self.0[(i >> 6) as usize] &= !(1u64 << (i & 63));
    }
}

/// The VM's memory.
pub struct Memory {
    base: NonNull<u8>,
    /// Pages that were ever written (the only ones that can be non-zero).
    touched: Bitmap,
    touched_list: Vec<u32>,
    /// Pages whose cached root is out of date.
    stale: Bitmap,
    stale_list: Vec<u32>,
    /// Pages written since the last [`Memory::take_written_pages`].
    written: Bitmap,
    written_list: Vec<u32>,
    /// Pages that are stale *and* written: a store to such a page needs no bookkeeping.
    hot: Bitmap,
    /// Per-page hash cache: the page's bytes when last hashed and its internal nodes.
    pages: HashMap<u32, Box<PageCache>>,
    /// Cached nodes of levels 8..=27, `upper[level - 8][index]`; absent means zero subtree.
    upper: Vec<HashMap<u32, Hash>>,
}

// SAFETY: the mapping is owned exclusively by this value; nothing else aliases it.
unsafe impl Send for Memory {}
// SAFETY: shared references only read the mapping.
unsafe impl Sync for Memory {}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory").field("touched_pages", &self.touched_list.len()).finish()
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: `base` came from a successful mmap of SPACE bytes in `new`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), SPACE);
        }
    }
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new()
    }
}

impl Clone for Memory {
    fn clone(&self) -> Self {
        let mut m = Memory::new();
        for &p in &self.touched_list {
            m.write_page(p, self.page(p));
        }
        m
    }
}

impl Memory {
    /// A copy with every hash current and cached, as if the copy had been hashed.
    pub fn clone_hashed(&self) -> Memory {
        let mut m = self.clone();
        m.root();
        m
    }

    /// All-zero memory.
    ///
    /// # Panics
    /// If the operating system refuses to reserve 4 GiB of address space.
    pub fn new() -> Memory {
        // SAFETY: anonymous private mapping; no file, no aliasing. MAP_NORESERVE: pages
        // are only backed once written.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SPACE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "cannot reserve 4 GiB of address space for VM memory");
        Memory {
            base: NonNull::new(ptr.cast()).expect("mmap returned null"),
            touched: Bitmap::new(),
            touched_list: Vec::new(),
            stale: Bitmap::new(),
            stale_list: Vec::new(),
            written: Bitmap::new(),
            written_list: Vec::new(),
            hot: Bitmap::new(),
            pages: HashMap::new(),
            upper: (8..=TREE_DEPTH).map(|_| HashMap::new()).collect(),
        }
    }

    #[inline(always)]
    fn ptr(&self, addr: u32) -> *mut u8 {
        // SAFETY: every u32 offset lies inside the 4 GiB mapping.
        unsafe { self.base.as_ptr().add(addr as usize) }
    }

    /// Record that `page` is about to be written.
    #[inline(always)]
    fn mark(&mut self, page: u32) {
        if !self.hot.get(page) {
            self.mark_slow(page);
        }
    }

    #[cold]
    fn mark_slow(&mut self, page: u32) {
        if !self.touched.get(page) {
            self.touched.set(page);
            self.touched_list.push(page);
        }
        if !self.stale.get(page) {
            self.stale.set(page);
            self.stale_list.push(page);
        }
        if !self.written.get(page) {
            self.written.set(page);
            self.written_list.push(page);
        }
        self.hot.set(page);
    }

    #[inline(always)]
    pub fn read_u8(&self, addr: u32) -> u8 {
        // SAFETY: in-bounds (see `ptr`).
        unsafe { *self.ptr(addr) }
    }

    /// Little-endian halfword at an even address.
    #[inline(always)]
    pub fn read_u16(&self, addr: u32) -> u16 {
        debug_assert!(addr & 1 == 0);
        // SAFETY: in-bounds; an even address cannot straddle the end of the space.
        unsafe { u16::from_le(std::ptr::read_unaligned(self.ptr(addr).cast())) }
    }

    /// Little-endian word at a 4-aligned address.
    #[inline(always)]
    pub fn read_u32(&self, addr: u32) -> u32 {
        debug_assert!(addr & 3 == 0);
        // SAFETY: in-bounds; an aligned word cannot straddle the end of the space.
        unsafe { u32::from_le(std::ptr::read_unaligned(self.ptr(addr).cast())) }
    }

    #[inline(always)]
    pub fn write_u8(&mut self, addr: u32, v: u8) {
        self.mark(addr >> PAGE_SHIFT);
        // SAFETY: in-bounds.
        unsafe { *self.ptr(addr) = v }
    }

    #[inline(always)]
    pub fn write_u16(&mut self, addr: u32, v: u16) {
        debug_assert!(addr & 1 == 0);
        self.mark(addr >> PAGE_SHIFT);
        // SAFETY: in-bounds, even address.
        unsafe { std::ptr::write_unaligned(self.ptr(addr).cast(), v.to_le()) }
    }

    #[inline(always)]
    pub fn write_u32(&mut self, addr: u32, v: u32) {
        debug_assert!(addr & 3 == 0);
        self.mark(addr >> PAGE_SHIFT);
        // SAFETY: in-bounds, aligned address.
        unsafe { std::ptr::write_unaligned(self.ptr(addr).cast(), v.to_le()) }
    }

    /// `len` bytes from `addr`, wrapping at 2^32.
    pub fn read_bytes(&self, addr: u32, len: usize) -> Vec<u8> {
        (0..len).map(|i| self.read_u8(addr.wrapping_add(i as u32))).collect()
    }

    /// Write `bytes` at `addr`, wrapping at 2^32.
    pub fn write_bytes(&mut self, addr: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.write_u8(addr.wrapping_add(i as u32), b);
        }
    }

    /// The 4 KiB of page `page`.
    pub fn page(&self, page: u32) -> &[u8; PAGE_BYTES] {
        assert!((page as usize) < PAGE_COUNT, "page index out of range");
        // SAFETY: the page lies inside the mapping; `&self` forbids concurrent writes.
        unsafe { &*(self.ptr(page << PAGE_SHIFT) as *const [u8; PAGE_BYTES]) }
    }

    /// Overwrite page `page`.
    pub fn write_page(&mut self, page: u32, bytes: &[u8; PAGE_BYTES]) {
        assert!((page as usize) < PAGE_COUNT, "page index out of range");
        self.mark(page);
        // SAFETY: the page lies inside the mapping and we hold `&mut self`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr(page << PAGE_SHIFT), PAGE_BYTES) }
    }

    /// The 32-byte leaf with index `index` (address `index * 32`).
    pub fn leaf(&self, index: u32) -> Hash {
        assert!(index < (1 << TREE_DEPTH), "leaf index out of range");
        let mut out = [0u8; 32];
        // SAFETY: in-bounds: index < 2^27 so the leaf ends at or before 2^32.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr(index << 5), out.as_mut_ptr(), 32) };
        out
    }

    /// Pages that were ever written, in first-write order.
    pub fn touched_pages(&self) -> &[u32] {
        &self.touched_list
    }

    /// Pages written since the previous call (or since creation), and forget them.
    pub fn take_written_pages(&mut self) -> Vec<u32> {
        let pages = std::mem::take(&mut self.written_list);
        for &p in &pages {
            self.written.clear(p);
            self.hot.clear(p);
        }
        pages
    }

    /// Bring every cached hash up to date.
    fn rehash(&mut self) {
        if self.stale_list.is_empty() {
            return;
        }
        let mut pages = std::mem::take(&mut self.stale_list);
        for &p in &pages {
            self.stale.clear(p);
            self.hot.clear(p);
        }
        pages.sort_unstable();
        // Take the caches out so they can be updated in parallel against `&self`.
        let mut work: Vec<(u32, Option<Box<PageCache>>)> = pages.iter().map(|&p| (p, self.pages.remove(&p))).collect();
        let update = |(p, cache): &mut (u32, Option<Box<PageCache>>)| {
            let bytes = self.page(*p);
            match cache {
                Some(c) => c.update(bytes),
                None => *cache = Some(PageCache::build(bytes)),
            }
        };
        if work.len() >= 8 {
            work.par_iter_mut().for_each(update);
        } else {
            work.iter_mut().for_each(update);
        }
        for (p, c) in work {
            self.pages.insert(p, c.expect("page cache built"));
        }
        let mut idx = pages;
        for level in PAGE_HEIGHT + 1..=TREE_DEPTH {
            for i in idx.iter_mut() {
                *i >>= 1;
            }
            idx.dedup();
            for &i in &idx {
                let l = self.node(level - 1, 2 * i);
                let r = self.node(level - 1, 2 * i + 1);
                self.upper[level - 8].insert(i, hash_pair(&l, &r));
            }
        }
    }

    /// Cached node at `level >= 7` (assumes hashes are current).
    fn node(&self, level: usize, index: u32) -> Hash {
        let cached = if level == PAGE_HEIGHT {
            self.pages.get(&index).map(|c| c.nodes[1])
        } else {
            self.upper[level - 8].get(&index).copied()
        };
        cached.unwrap_or(*zero_hash(level))
    }

    /// The memory root, rehashing dirty pages first.
    pub fn root(&mut self) -> Hash {
        self.rehash();
        self.node(TREE_DEPTH, 0)
    }

    /// The leaf holding `addr` and its 27 siblings under [`Memory::root`].
    pub fn proof(&mut self, addr: u32) -> LeafProof {
        self.rehash();
        let li = addr >> 5;
        let page = addr >> PAGE_SHIFT;
        let mut siblings = [[0u8; 32]; TREE_DEPTH];
        let in_page = (li & 127) as usize;
        match self.pages.get(&page) {
            Some(c) => {
                for (l, sib) in siblings.iter_mut().enumerate().take(PAGE_HEIGHT) {
                    *sib = c.node(l, (in_page >> l) ^ 1);
                }
            }
            None => {
                // A page never written is all zero.
                for (l, sib) in siblings.iter_mut().enumerate().take(PAGE_HEIGHT) {
                    *sib = *zero_hash(l);
                }
            }
        }
        for (l, sib) in siblings.iter_mut().enumerate().skip(PAGE_HEIGHT) {
            *sib = self.node(l, (li >> l) ^ 1);
        }
        LeafProof { leaf: self.leaf(li), siblings }
    }
}

/// The hash cache of one page: its bytes when last hashed and its internal nodes in heap
/// order (`nodes[1]` the page root, `nodes[2i]`/`nodes[2i+1]` the children of `nodes[i]`,
/// `nodes[64..128]` the parents of leaf pairs). A rehash compares the page with the
/// snapshot and recomputes only the paths of leaves that changed.
struct PageCache {
    bytes: [u8; PAGE_BYTES],
    nodes: [Hash; 128],
}

impl PageCache {
    fn leaf(&self, i: usize) -> &Hash {
        self.bytes[i * 32..i * 32 + 32].try_into().expect("32 bytes")
    }

    fn build(bytes: &[u8; PAGE_BYTES]) -> Box<PageCache> {
        let mut c = Box::new(PageCache { bytes: *bytes, nodes: [[0u8; 32]; 128] });
        let leaves: Vec<Hash> = bytes.chunks_exact(32).map(|l| l.try_into().expect("32 bytes")).collect();
        // Level by level with the batch hasher: nodes[64..128] from the leaves, then
        // nodes[32..64] from nodes[64..128], ... nodes[1] from nodes[2..4].
        hash_pairs(&leaves, &mut c.nodes[64..128]);
        let mut width = 64;
        while width > 1 {
            let (lo, hi) = c.nodes.split_at_mut(width);
            hash_pairs(&hi[..width], &mut lo[width / 2..width]);
            width /= 2;
        }
        c
    }

    fn update(&mut self, bytes: &[u8; PAGE_BYTES]) {
        let changed: Vec<usize> =
            (0..64).filter(|&i| self.bytes[i * 64..i * 64 + 64] != bytes[i * 64..i * 64 + 64]).collect();
        if changed.len() > 16 {
            // Most of the page changed: rebuilding with the batch hasher is cheaper.
            *self = *PageCache::build(bytes);
            return;
        }
        let mut dirty = [false; 128];
        for &i in &changed {
            self.bytes[i * 64..i * 64 + 64].copy_from_slice(&bytes[i * 64..i * 64 + 64]);
            self.nodes[64 + i] = hash_pair(self.leaf(2 * i), self.leaf(2 * i + 1));
            dirty[(64 + i) / 2] = true;
        }
        for h in (1..64).rev() {
            if dirty[h] {
                self.nodes[h] = hash_pair(&self.nodes[2 * h], &self.nodes[2 * h + 1]);
                dirty[h / 2] = true;
            }
        }
    }

    /// Node at in-page `level` (0 = leaves) and index.
    fn node(&self, level: usize, index: usize) -> Hash {
        if level == 0 {
            *self.leaf(index)
        } else {
            self.nodes[(128 >> level) + index]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opml_merkle::{keccak256, path_root};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Naive sparse reference: hash a map of non-zero leaves recursively with the generic
    /// keccak, treating absent subtrees as zero subtrees.
    fn naive_root(leaves: &BTreeMap<u32, Hash>, level: usize, index: u32) -> Hash {
        let lo = (index as u64) << level;
        let hi = lo + (1u64 << level);
        if leaves.range(lo as u32..).next().is_none_or(|(&k, _)| (k as u64) >= hi) {
            return *zero_hash(level);
        }
        if level == 0 {
            return leaves[&index];
        }
        let l = naive_root(leaves, level - 1, 2 * index);
        let r = naive_root(leaves, level - 1, 2 * index + 1);
        let mut cat = l.to_vec();
        cat.extend_from_slice(&r);
        keccak256(&cat)
    }

    fn leaf_map(m: &Memory) -> BTreeMap<u32, Hash> {
        let mut map = BTreeMap::new();
        for &p in m.touched_pages() {
            for i in 0..128u32 {
                let li = (p << 7) | i;
                let leaf = m.leaf(li);
                if leaf != [0u8; 32] {
                    map.insert(li, leaf);
                }
            }
        }
        map
    }

    #[test]
    fn empty_memory_root_is_zero_subtree_27() {
        assert_eq!(Memory::new().root(), *zero_hash(27));
    }

    #[test]
    fn top_and_bottom_of_the_space_are_writable() {
        let mut m = Memory::new();
        m.write_u32(0xffff_fffc, 0xdead_beef);
        m.write_u8(0, 1);
        assert_eq!(m.read_u32(0xffff_fffc), 0xdead_beef);
        let root = m.root();
        let p = m.proof(0xffff_fffc);
        assert_eq!(path_root(&p.leaf, (0xffff_fffcu32 >> 5) as u64, &p.siblings), root);
        assert_eq!(root, naive_root(&leaf_map(&m), 27, 0));
    }

    #[derive(Debug, Clone)]
    enum Write {
        U8(u32, u8),
        U16(u32, u16),
        U32(u32, u32),
    }

    fn addr() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (0u32..64).prop_map(|p| 0x1_0000 + p * 4096 + 17),
            (0u32..4096).prop_map(|o| 0x8000_0000 + o),
        ]
    }

    fn write() -> impl Strategy<Value = Write> {
        prop_oneof![
            (addr(), any::<u8>()).prop_map(|(a, v)| Write::U8(a, v)),
            (addr(), any::<u16>()).prop_map(|(a, v)| Write::U16(a & !1, v)),
            (addr(), any::<u32>()).prop_map(|(a, v)| Write::U32(a & !3, v)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The lazy root after random writes (with roots asked for at random points in
        /// between) equals a naive recomputation, and every proof verifies.
        #[test]
        fn lazy_root_equals_naive(batches in proptest::collection::vec(proptest::collection::vec(write(), 0..40), 1..5)) {
            let mut m = Memory::new();
            let mut addrs = vec![0u32];
            for batch in batches {
                for w in batch {
                    match w {
                        Write::U8(a, v) => { m.write_u8(a, v); addrs.push(a) }
                        Write::U16(a, v) => { m.write_u16(a, v); addrs.push(a) }
                        Write::U32(a, v) => { m.write_u32(a, v); addrs.push(a) }
                    }
                }
                let root = m.root();
                prop_assert_eq!(root, naive_root(&leaf_map(&m), 27, 0));
                for &a in addrs.iter().rev().take(8) {
                    let p = m.proof(a);
                    prop_assert_eq!(path_root(&p.leaf, (a >> 5) as u64, &p.siblings), root);
                }
            }
        }
    }

    #[test]
    fn rewriting_most_or_little_of_a_hashed_page_keeps_the_root_exact() {
        let mut m = Memory::new();
        for (round, count) in [(1u32, 1024u32), (2, 1024), (3, 5), (4, 300), (5, 1)] {
            for w in 0..count {
                m.write_u32(0x5000 + 4 * ((w * 7) % 1024), w.wrapping_mul(round).wrapping_add(0x9e37_79b9));
            }
            let root = m.root();
            assert_eq!(root, naive_root(&leaf_map(&m), 27, 0), "round {round}");
            let p = m.proof(0x5000 + 4 * 33);
            assert_eq!(path_root(&p.leaf, ((0x5000 + 4 * 33) >> 5) as u64, &p.siblings), root);
        }
    }

    #[test]
    fn clone_has_same_root_and_written_pages_are_reported_once() {
        let mut m = Memory::new();
        m.write_u32(0x2000, 5);
        m.write_u32(0x2004, 6);
        m.write_u32(0x9000, 7);
        assert_eq!(m.take_written_pages(), vec![2, 9]);
        assert!(m.take_written_pages().is_empty());
        m.write_u8(0x2001, 1);
        assert_eq!(m.take_written_pages(), vec![2]);
        let mut c = m.clone();
        assert_eq!(c.root(), m.root());
    }
}
