//! Locating and reading forge's build artifacts.

use std::path::{Path, PathBuf};

/// Environment variable naming forge's `out/` directory (default: `contracts/out`).
pub const OUT_DIR_ENV: &str = "OPML_CONTRACTS_OUT";

/// Why an artifact could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(
        "forge artifact {path} not found: build the contracts first with `contracts/scripts/setup.sh` \
         (npm ci + forge build), or point {OUT_DIR_ENV} at forge's out/ directory"
    )]
    Missing { path: PathBuf },
    #[error("cannot read forge artifact {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("forge artifact {path} is not JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("forge artifact {path} has no string field deployedBytecode.object")]
    NoBytecode { path: PathBuf },
    #[error("forge artifact {path}: deployedBytecode.object is not hex: {source}")]
    Hex { path: PathBuf, source: hex::FromHexError },
    #[error("forge artifact {path}: deployedBytecode.object is empty (abstract contract or interface?)")]
    Empty { path: PathBuf },
}

/// Path of the artifact forge writes for `contract` defined in `source` (e.g. `Step.sol`,
/// `Step`): `<out>/<source>/<contract>.json`.
pub fn artifact_path(source: &str, contract: &str) -> PathBuf {
    let out = std::env::var_os(OUT_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("out"));
    out.join(source).join(format!("{contract}.json"))
}

/// The runtime bytecode (`deployedBytecode.object`) of a forge artifact.
pub fn load_deployed_bytecode(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ArtifactError::Missing { path: path.to_path_buf() }
        } else {
            ArtifactError::Read { path: path.to_path_buf(), source }
        }
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ArtifactError::Json { path: path.to_path_buf(), source })?;
    let object = json
        .get("deployedBytecode")
        .and_then(|b| b.get("object"))
        .and_then(|o| o.as_str())
        .ok_or_else(|| ArtifactError::NoBytecode { path: path.to_path_buf() })?;
    let code = hex::decode(object.trim_start_matches("0x"))
        .map_err(|source| ArtifactError::Hex { path: path.to_path_buf(), source })?;
    if code.is_empty() {
        return Err(ArtifactError::Empty { path: path.to_path_buf() });
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_artifact_names_the_setup_script() {
        let err = load_deployed_bytecode(Path::new("/nonexistent/out/Step.sol/Step.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("contracts/scripts/setup.sh"), "{msg}");
        assert!(msg.contains("/nonexistent/out/Step.sol/Step.json"), "{msg}");
    }
}
