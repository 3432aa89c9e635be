//! Gives test binaries and examples an rpath to libtorch, so they run without LD_LIBRARY_PATH.
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let dir = std::path::PathBuf::from(dir);
        let lib = if dir.join("libtorch_cpu.so").exists() { dir } else { dir.join("lib") };
        // The canonical path: libtorch finds its CUDA stubs relative to its real location.
        let lib = std::fs::canonicalize(&lib).unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
