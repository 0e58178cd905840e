//! ggml block formats, typed: the values exactly as shipped (4-bit or 8-bit integers and
//! their f16 scale bits), so that the integer model can commit to them unchanged, and a float
//! `dequantize` for the float reference.
//!
//! Layouts (ggml `block_q4_1`, `block_q8_0`; little-endian):
//!
//! | type | bytes | layout | value `i` of the block |
//! |------|-------|--------|------------------------|
//! | Q4_1 | 20 | `d: f16, m: f16, qs: [u8; 16]` | `d * q_i + m`, `q_i = qs[i] & 15` for `i < 16`, `qs[i - 16] >> 4` otherwise |
//! | Q8_0 | 34 | `d: f16, qs: [i8; 32]` | `d * qs[i]` |
//!
//! The low nibbles hold the first half of the block and the high nibbles the second half
//! (not interleaved pairs).

use half::f16;

use crate::error::{ImportError, Result};

/// Values per block, for both block types.
pub const BLOCK_LEN: usize = 32;

/// A Q4_1 block: 32 unsigned 4-bit values `q`, value `d * q + m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ4_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum (offset), f16 bits.
    pub m: u16,
    /// Packed values: value `i < 16` is the low nibble of `qs[i]`, value `16 + i` its high nibble.
    pub qs: [u8; 16],
}

impl BlockQ4_1 {
    /// Bytes of one block in a GGUF payload.
    pub const BYTES: usize = 20;

    /// Read one block from its 20 bytes.
    pub fn from_bytes(b: &[u8; Self::BYTES]) -> Self {
        let mut qs = [0; 16];
        qs.copy_from_slice(&b[4..]);
        Self { d: u16::from_le_bytes([b[0], b[1]]), m: u16::from_le_bytes([b[2], b[3]]), qs }
    }

    /// Build a block from 32 values in `0..16` (panics on a larger value).
    pub fn from_values(d: u16, m: u16, q: &[u8; BLOCK_LEN]) -> Self {
        assert!(q.iter().all(|&v| v < 16), "Q4_1 values are 4-bit");
        Self { d, m, qs: std::array::from_fn(|i| q[i] | (q[i + 16] << 4)) }
    }

    /// The 32 unsigned 4-bit values, in order.
    pub fn values(&self) -> [u8; BLOCK_LEN] {
        std::array::from_fn(|i| if i < 16 { self.qs[i] & 0x0f } else { self.qs[i - 16] >> 4 })
    }

    /// The float values `d * q + m` (f16 scale and minimum widened to f32 exactly, one f32
    /// multiply and one f32 add per value, as ggml's reference `dequantize_row_q4_1`).
    pub fn dequantize(&self) -> [f32; BLOCK_LEN] {
        let (d, m) = (f16::from_bits(self.d).to_f32(), f16::from_bits(self.m).to_f32());
        let q = self.values();
        std::array::from_fn(|i| f32::from(q[i]) * d + m)
    }
}

/// A Q8_0 block: 32 int8 values `q`, value `d * q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// The values.
    pub qs: [i8; BLOCK_LEN],
}

impl BlockQ8_0 {
    /// Bytes of one block in a GGUF payload.
    pub const BYTES: usize = 34;

    /// Read one block from its 34 bytes.
    pub fn from_bytes(b: &[u8; Self::BYTES]) -> Self {
        Self { d: u16::from_le_bytes([b[0], b[1]]), qs: std::array::from_fn(|i| b[2 + i] as i8) }
    }

    /// The float values `d * q`.
    pub fn dequantize(&self) -> [f32; BLOCK_LEN] {
        let d = f16::from_bits(self.d).to_f32();
        std::array::from_fn(|i| f32::from(self.qs[i]) * d)
    }
}

/// A block type this crate reads.
pub trait Block: Copy + std::fmt::Debug {
    /// Bytes of one block.
    const BYTES: usize;
    /// Read one block (`b` is exactly `BYTES` long).
    fn read(b: &[u8]) -> Self;
    /// Its 32 float values.
    fn to_f32(&self) -> [f32; BLOCK_LEN];
}

impl Block for BlockQ4_1 {
    const BYTES: usize = Self::BYTES;
    fn read(b: &[u8]) -> Self {
        Self::from_bytes(b.try_into().expect("a Q4_1 block is 20 bytes"))
    }
    fn to_f32(&self) -> [f32; BLOCK_LEN] {
        self.dequantize()
    }
}

impl Block for BlockQ8_0 {
    const BYTES: usize = Self::BYTES;
    fn read(b: &[u8]) -> Self {
        Self::from_bytes(b.try_into().expect("a Q8_0 block is 34 bytes"))
    }
    fn to_f32(&self) -> [f32; BLOCK_LEN] {
        self.dequantize()
    }
}

/// A row-major matrix of `rows` rows of `cols` values, stored as blocks along each row
/// (`cols / 32` blocks per row). For a linear layer `y = W x`, a row is one output and `cols`
/// is the input width; for the embedding, a row is one token's vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMatrix<B> {
    /// Number of rows (GGUF `ne[1]`).
    pub rows: usize,
    /// Values per row (GGUF `ne[0]`), a multiple of 32.
    pub cols: usize,
    /// `rows * cols / 32` blocks, row after row.
    pub blocks: Vec<B>,
}

impl<B: Block> BlockMatrix<B> {
    /// Read a matrix from its GGUF payload; `name` is only for the error.
    pub fn from_bytes(name: &str, rows: usize, cols: usize, bytes: &[u8]) -> Result<Self> {
        let blocks = rows * (cols / BLOCK_LEN);
        if !cols.is_multiple_of(BLOCK_LEN) || bytes.len() != blocks * B::BYTES {
            return Err(ImportError::TensorBytes {
                name: name.to_string(),
                len: bytes.len(),
                blocks,
                block_bytes: B::BYTES,
            });
        }
        Ok(Self { rows, cols, blocks: bytes.chunks_exact(B::BYTES).map(B::read).collect() })
    }

    /// Blocks per row.
    pub fn blocks_per_row(&self) -> usize {
        self.cols / BLOCK_LEN
    }

    /// The blocks of row `r`.
    pub fn row(&self, r: usize) -> &[B] {
        let n = self.blocks_per_row();
        &self.blocks[r * n..(r + 1) * n]
    }

    /// Float values, row-major `rows x cols`: the float reference's weights.
    pub fn dequantize(&self) -> Vec<f32> {
        self.blocks.iter().flat_map(|b| b.to_f32()).collect()
    }
}

/// Read an F32 payload of `len` values; `name` is only for the error.
pub fn f32_vector(name: &str, len: usize, bytes: &[u8]) -> Result<Vec<f32>> {
    if bytes.len() != len * 4 {
        return Err(ImportError::TensorBytes { name: name.to_string(), len: bytes.len(), blocks: len, block_bytes: 4 });
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // f16 bit patterns: 0.5 = 0x3800, -1.0 = 0xbc00, 0.25 = 0x3400, 2.0 = 0x4000.
    const HALF: u16 = 0x3800;
    const MINUS_ONE: u16 = 0xbc00;
    const QUARTER: u16 = 0x3400;
    const TWO: u16 = 0x4000;

    #[test]
    fn a_q4_1_block_dequantizes_to_d_times_q_plus_m() {
        // d = 0.5, m = -1, q_i = i mod 16: value i is 0.5 * (i mod 16) - 1.
        let q: [u8; 32] = std::array::from_fn(|i| (i % 16) as u8);
        let b = BlockQ4_1::from_values(HALF, MINUS_ONE, &q);
        let want: [f32; 32] = std::array::from_fn(|i| {
            [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5][i % 16]
        });
        assert_eq!(b.dequantize(), want);
    }

    #[test]
    fn q4_1_low_nibbles_are_the_first_half_of_the_block() {
        // As stored: d = 2.0, m = 0.25, then qs[0] = 0x71 (value 0 is 1, value 16 is 7),
        // qs[15] = 0xf0 (value 15 is 0, value 31 is 15), other bytes zero.
        let mut bytes = [0u8; 20];
        bytes[0..2].copy_from_slice(&TWO.to_le_bytes());
        bytes[2..4].copy_from_slice(&QUARTER.to_le_bytes());
        bytes[4] = 0x71;
        bytes[4 + 15] = 0xf0;
        let b = BlockQ4_1::from_bytes(&bytes);
        assert_eq!((b.d, b.m), (TWO, QUARTER));
        let v = b.values();
        assert_eq!((v[0], v[16], v[15], v[31], v[1], v[17]), (1, 7, 0, 15, 0, 0));
        let x = b.dequantize();
        assert_eq!((x[0], x[16], x[15], x[31], x[1]), (2.25, 14.25, 0.25, 30.25, 0.25));
    }

    #[test]
    fn q4_1_values_round_trip_through_packing() {
        let q: [u8; 32] = std::array::from_fn(|i| ((i * 7 + 3) % 16) as u8);
        assert_eq!(BlockQ4_1::from_values(0, 0, &q).values(), q);
    }

    #[test]
    fn a_q8_0_block_dequantizes_to_d_times_q() {
        let mut bytes = [0u8; 34];
        bytes[0..2].copy_from_slice(&HALF.to_le_bytes());
        for i in 0..32 {
            bytes[2 + i] = (i as i8 - 16) as u8;
        }
        let b = BlockQ8_0::from_bytes(&bytes);
        assert_eq!(b.qs[0], -16);
        assert_eq!(b.qs[31], 15);
        let want: [f32; 32] = std::array::from_fn(|i| (i as f32 - 16.0) * 0.5);
        assert_eq!(b.dequantize(), want);
    }

    #[test]
    fn a_matrix_payload_must_be_whole_blocks() {
        let e = BlockMatrix::<BlockQ4_1>::from_bytes("w", 2, 64, &[0; 79]).unwrap_err();
        assert!(matches!(e, ImportError::TensorBytes { ref name, len: 79, blocks: 4, block_bytes: 20 } if name == "w"));
        let e = BlockMatrix::<BlockQ8_0>::from_bytes("e", 1, 48, &[0; 34]).unwrap_err();
        assert!(matches!(e, ImportError::TensorBytes { .. }));
    }

    #[test]
    fn matrix_rows_are_consecutive_blocks() {
        let mut bytes = vec![0u8; 4 * BlockQ8_0::BYTES];
        for (k, chunk) in bytes.chunks_exact_mut(BlockQ8_0::BYTES).enumerate() {
            chunk[0..2].copy_from_slice(&TWO.to_le_bytes());
            chunk[2] = k as u8;
        }
        let m = BlockMatrix::<BlockQ8_0>::from_bytes("e", 2, 64, &bytes).unwrap();
        assert_eq!(m.row(1)[0].qs[0], 2);
        let x = m.dequantize();
        assert_eq!(x.len(), 128);
        assert_eq!((x[0], x[32], x[64], x[96], x[97]), (0.0, 2.0, 4.0, 6.0, 0.0));
    }
}
