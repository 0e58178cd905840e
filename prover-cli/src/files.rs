//! Loading the files commands take: bundles (checked against this build's kernels) and
//! data sets, with errors that name the file.

use std::path::Path;

use anyhow::{Context, Result};
use opml_compiler::binding::check_images;
use opml_dnn::bundle::Bundle;
use opml_dnn::st::{read_dataset, DataSet};

/// The bytes of `path`.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Load and validate a bundle file: its graph, weights and recorded commitment, and that
/// its recorded node images are this build's kernels (so its model commitment is the one a
/// dispute's VM images prove against).
pub fn load_bundle(path: &Path) -> Result<Bundle> {
    let b = Bundle::from_bytes(&read(path)?).with_context(|| format!("loading bundle {}", path.display()))?;
    check_images(&b.model, b.node_images()).with_context(|| format!("loading bundle {}", path.display()))?;
    Ok(b)
}

/// Load a data file.
pub fn load_data(path: &Path, need_labels: bool) -> Result<DataSet> {
    let name = path.display().to_string();
    Ok(read_dataset(&read(path)?, &name, need_labels)?)
}
