//! What the tests on the real default model share.

use std::path::{Path, PathBuf};

/// The default model's directory (`BERTMT_MODEL`, else the one `cargo xtask setup` puts in `data/models`).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("BERTMT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("config.json").is_file(),
        "the default model is missing at {}: run `cargo xtask setup` (or set BERTMT_MODEL)",
        dir.display()
    );
    dir
}
