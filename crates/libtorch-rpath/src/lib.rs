//! For build scripts of crates that depend on `torch-sys` directly: [`emit`] gives the crate's binaries (tests,
//! examples, benches) an rpath to the libtorch that `torch-sys` linked, so they run without `LD_LIBRARY_PATH`.
//!
//! In `build.rs`, with `libtorch-rpath` under `[build-dependencies]`:
//!
//! ```no_run
//! libtorch_rpath::emit();
//! ```

use std::path::{Path, PathBuf};

/// The libtorch library directory, from the `DEP_TCH_LIBTORCH_LIB` value that `torch-sys` passes to the build
/// scripts of the crates depending on it directly: it names `lib/` itself or its parent. The path is canonical:
/// libtorch finds its CUDA stubs relative to its real location.
pub fn library_dir(dep_tch_libtorch_lib: &Path) -> PathBuf {
    let dir = dep_tch_libtorch_lib;
    let lib = if dir.join("libtorch_cpu.so").exists() { dir.to_path_buf() } else { dir.join("lib") };
    std::fs::canonicalize(&lib).unwrap_or(lib)
}

/// Prints the `cargo:rustc-link-arg` with the rpath; does nothing when `torch-sys` is not a direct dependency
/// (or not enabled), as for `datasets --no-default-features`.
pub fn emit() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Some(dir) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", library_dir(Path::new(&dir)).display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lib_directory_is_found_from_itself_or_its_parent() {
        let root = tempfile_dir();
        let lib = root.join("lib");
        std::fs::create_dir_all(&lib).expect("mkdir");
        std::fs::write(lib.join("libtorch_cpu.so"), b"").expect("write");
        let canonical = std::fs::canonicalize(&lib).expect("canonical");
        assert_eq!(library_dir(&lib), canonical);
        assert_eq!(library_dir(&root), canonical);
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("libtorch-rpath-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
