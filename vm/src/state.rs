//! The packed machine state (docs/spec/vm.md §7) and its hash.

use opml_merkle::{keccak256, Hash};

use crate::isa::{Status, MAX_FAULT};

/// Length of the packed state encoding.
pub const STATE_LEN: usize = 173;

/// Byte offsets of the fields in the encoding.
pub mod offset {
    pub const MEM_ROOT: usize = 0;
    pub const PC: usize = 32;
    pub const STEP: usize = 36;
    pub const STATUS: usize = 44;
    pub const EXIT_CODE: usize = 45;
    pub const REGS: usize = 49;
}

/// The machine state as the step function sees it: registers, pc, memory root, step
/// counter, status and exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `regs[0]` is always 0 and not encoded.
    pub regs: [u32; 32],
    pub pc: u32,
    pub mem_root: Hash,
    pub step: u64,
    pub status: Status,
    pub exit_code: u32,
}

/// Why a state encoding was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state encoding is {0} bytes, expected {STATE_LEN}")]
    Length(usize),
    #[error("state status byte {0} is not 0 (running), 1 (exited) or 2 (faulted)")]
    Status(u8),
    #[error("running state has non-zero exit code {0}")]
    RunningExitCode(u32),
    #[error("faulted state has exit code {0}, not a fault reason 1..={MAX_FAULT}")]
    FaultReason(u32),
}

impl State {
    /// Pack into the 173-byte encoding.
    pub fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        out[offset::MEM_ROOT..offset::MEM_ROOT + 32].copy_from_slice(&self.mem_root);
        out[offset::PC..offset::PC + 4].copy_from_slice(&self.pc.to_be_bytes());
        out[offset::STEP..offset::STEP + 8].copy_from_slice(&self.step.to_be_bytes());
        out[offset::STATUS] = self.status as u8;
        out[offset::EXIT_CODE..offset::EXIT_CODE + 4].copy_from_slice(&self.exit_code.to_be_bytes());
        for i in 1..32 {
            let o = offset::REGS + 4 * (i - 1);
            out[o..o + 4].copy_from_slice(&self.regs[i].to_be_bytes());
        }
        out
    }

    /// Unpack and check canonicity (spec §7).
    pub fn decode(bytes: &[u8]) -> Result<State, StateError> {
        if bytes.len() != STATE_LEN {
            return Err(StateError::Length(bytes.len()));
        }
        let be32 = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let status_byte = bytes[offset::STATUS];
        let status = Status::from_byte(status_byte).ok_or(StateError::Status(status_byte))?;
        let exit_code = be32(offset::EXIT_CODE);
        match status {
            Status::Running if exit_code != 0 => return Err(StateError::RunningExitCode(exit_code)),
            Status::Faulted if exit_code == 0 || exit_code > MAX_FAULT => {
                return Err(StateError::FaultReason(exit_code))
            }
            _ => {}
        }
        let mut regs = [0u32; 32];
        for (i, r) in regs.iter_mut().enumerate().skip(1) {
            *r = be32(offset::REGS + 4 * (i - 1));
        }
        Ok(State {
            regs,
            pc: be32(offset::PC),
            mem_root: bytes[offset::MEM_ROOT..offset::MEM_ROOT + 32].try_into().expect("32 bytes"),
            step: u64::from_be_bytes(bytes[offset::STEP..offset::STEP + 8].try_into().expect("8 bytes")),
            status,
            exit_code,
        })
    }

    /// keccak256 of the encoding.
    pub fn hash(&self) -> Hash {
        keccak256(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut regs = [0u32; 32];
        for (i, r) in regs.iter_mut().enumerate().skip(1) {
            *r = (i as u32).wrapping_mul(0x9e37_79b9);
        }
        State {
            regs,
            pc: 0x1_0004,
            mem_root: [7; 32],
            step: 0x0102_0304_0506_0708,
            status: Status::Running,
            exit_code: 0,
        }
    }

    #[test]
    fn encoding_places_fields_at_spec_offsets() {
        let s = sample();
        let e = s.encode();
        assert_eq!(&e[32..36], &[0x00, 0x01, 0x00, 0x04]);
        assert_eq!(&e[36..44], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(e[44], 0);
        // x31 is the last 4 bytes.
        assert_eq!(&e[169..173], &(31u32.wrapping_mul(0x9e37_79b9)).to_be_bytes());
        assert_eq!(State::decode(&e).unwrap(), s);
    }

    #[test]
    fn non_canonical_encodings_are_rejected() {
        let s = sample();
        let mut e = s.encode();
        assert_eq!(State::decode(&e[..172]), Err(StateError::Length(172)));
        e[44] = 3;
        assert_eq!(State::decode(&e), Err(StateError::Status(3)));
        e[44] = 0;
        e[48] = 1;
        assert_eq!(State::decode(&e), Err(StateError::RunningExitCode(1)));
        e[44] = 2;
        e[48] = 9;
        assert_eq!(State::decode(&e), Err(StateError::FaultReason(9)));
        e[48] = 0;
        assert_eq!(State::decode(&e), Err(StateError::FaultReason(0)));
        e[48] = 8;
        assert!(State::decode(&e).is_ok());
        e[44] = 1;
        e[45] = 0xff;
        assert!(State::decode(&e).is_ok(), "an exited state may carry any exit code");
    }
}
