//! The Python peers' interpreter: `BERTMT_PEER_PYTHON`, else a venv in the per-user cache.

use crate::setup;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Python packages of the peer venv.
const PEER_REQUIREMENTS: &[&str] =
    &["torch==2.13.0", "transformers", "pandas", "openpyxl", "beautifulsoup4", "onnxruntime", "onnx"];

/// Whether `python -c import` succeeds.
pub(super) fn has(python: &Path, import: &str) -> bool {
    Command::new(python).args(["-c", import]).output().is_ok_and(|o| o.status.success())
}

/// The peer's interpreter: `BERTMT_PEER_PYTHON`, else a venv in the per-user cache (created once).
pub(super) fn peer_python() -> Result<PathBuf> {
    if let Some(python) = std::env::var_os("BERTMT_PEER_PYTHON").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        if !has(&python, "import torch, transformers") {
            bail!("BERTMT_PEER_PYTHON={} cannot import torch and transformers", python.display());
        }
        return Ok(python);
    }
    let venv = setup::cache_root()?.join("peer-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".complete");
    let wanted = PEER_REQUIREMENTS.join("\n");
    if marker.exists() && std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        // A venv made for an earlier list: add what is new in place.
        eprintln!("updating the Python peer's venv {} ({})", venv.display(), PEER_REQUIREMENTS.join(" "));
        pip_install(&venv)?;
        atomic_files::write(&marker, wanted.as_bytes())?;
    }
    if !marker.exists() {
        eprintln!(
            "creating the Python peer's venv {} ({}: about 2.7 GB download, several minutes; \
             BERTMT_PEER_PYTHON=/path/to/python reuses an interpreter that has them)",
            venv.display(),
            PEER_REQUIREMENTS.join(" ")
        );
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .with_context(|| format!("cannot remove the incomplete {}", venv.display()))?;
        }
        let system_python = std::env::var_os("PYTHON").unwrap_or_else(|| OsString::from("python3"));
        let status = Command::new(&system_python).args(["-m", "venv"]).arg(&venv).status();
        if !status.is_ok_and(|s| s.success()) {
            bail!("cannot create a venv with {:?} -m venv (install python3-venv)", system_python);
        }
        pip_install(&venv)?;
        atomic_files::write(&marker, wanted.as_bytes())?;
    }
    Ok(python)
}

fn pip_install(venv: &Path) -> Result<()> {
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--disable-pip-version-check"])
        .args(PEER_REQUIREMENTS)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        bail!("pip install {} failed (is PyPI reachable?)", PEER_REQUIREMENTS.join(" "));
    }
    Ok(())
}
