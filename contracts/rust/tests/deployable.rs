//! The contracts stay deployable: their runtime code fits the EIP-170 limit, with room to
//! spare for later changes.

use std::path::Path;

use opml_contracts::{artifact_path, load_deployed_bytecode, ArtifactError};

/// EIP-170 maximum runtime code size.
const MAX_CODE_SIZE: usize = 24_576;

/// Room every contract keeps under MAX_CODE_SIZE (issue 10: at least 2 KiB), so that a
/// change to a contract does not make it undeployable.
const MIN_HEADROOM: usize = 2_048;

/// The contracts the game deploys; the headroom test fails if one of them has no artifact.
const DEPLOYED: [&str; 4] = ["OptimisticML", "HandoverVerifier", "ModelRegistry", "Step"];

#[test]
fn step_runtime_code_fits_eip170() {
    let code = load_deployed_bytecode(&artifact_path("Step.sol", "Step")).unwrap_or_else(|e| panic!("{e}"));
    assert!(code.len() <= MAX_CODE_SIZE, "Step runtime code is {} bytes, over {MAX_CODE_SIZE}", code.len());
}

/// (contract, runtime code size) of every contract defined in `contracts/src/*.sol`, read
/// from forge's artifacts; interfaces (empty runtime code) are left out.
fn source_contract_sizes() -> Vec<(String, usize)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("src");
    let mut sizes = Vec::new();
    let files = std::fs::read_dir(&src).unwrap_or_else(|e| panic!("cannot list {}: {e}", src.display()));
    for file in files {
        let file = file.unwrap_or_else(|e| panic!("cannot list {}: {e}", src.display())).file_name();
        let file = file.to_str().unwrap_or_else(|| panic!("non-UTF-8 file name in {}", src.display()));
        if !file.ends_with(".sol") {
            continue;
        }
        // forge writes one <Contract>.json per contract of <file> into out/<file>/.
        let dir = artifact_path(file, "-");
        let dir = dir.parent().expect("an artifact path has a parent");
        let artifacts = std::fs::read_dir(dir).unwrap_or_else(|e| {
            panic!("no artifacts for src/{file} in {} ({e}): build the contracts with `forge build`", dir.display())
        });
        for artifact in artifacts {
            let path = artifact.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path();
            let Some(contract) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            match load_deployed_bytecode(&path) {
                Ok(code) => sizes.push((contract.to_string(), code.len())),
                Err(ArtifactError::Empty { .. }) => {} // an interface: nothing is deployed
                Err(e) => panic!("{e}"),
            }
        }
    }
    sizes
}

#[test]
fn every_contract_leaves_2_kib_of_eip170_headroom() {
    let sizes = source_contract_sizes();
    for name in DEPLOYED {
        assert!(sizes.iter().any(|(c, _)| c == name), "no artifact of {name} among {sizes:?}");
    }
    let tight: Vec<String> = sizes
        .iter()
        .filter(|(_, len)| len + MIN_HEADROOM > MAX_CODE_SIZE)
        .map(|(c, len)| format!("{c}: {len} bytes, {} under the limit", MAX_CODE_SIZE.saturating_sub(*len)))
        .collect();
    assert!(
        tight.is_empty(),
        "runtime code must stay at least {MIN_HEADROOM} bytes under the EIP-170 limit of {MAX_CODE_SIZE}: {}",
        tight.join("; ")
    );
}
