//! The step verifier stays deployable: its runtime code fits the EIP-170 limit.

use opml_contracts::{artifact_path, load_deployed_bytecode};

/// EIP-170 maximum runtime code size.
const MAX_CODE_SIZE: usize = 24_576;

#[test]
fn step_runtime_code_fits_eip170() {
    let code = load_deployed_bytecode(&artifact_path("Step.sol", "Step")).unwrap_or_else(|e| panic!("{e}"));
    assert!(code.len() <= MAX_CODE_SIZE, "Step runtime code is {} bytes, over {MAX_CODE_SIZE}", code.len());
}
