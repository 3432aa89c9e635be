//! Compiles the C++ bridge to libtorch's c10d (`csrc/c10d_bridge.cpp`) against the libtorch that `torch-sys` linked,
//! with the vendored gloo headers (`csrc/vendor/gloo`, which libtorch does not ship), and gives this crate's test,
//! bench and example binaries an rpath to it.
use std::path::{Path, PathBuf};

fn main() {
    libtorch_rpath::emit();
    println!("cargo:rerun-if-changed=csrc/c10d_bridge.cpp");
    println!("cargo:rerun-if-changed=csrc/vendor");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = std::env::var_os("DEP_TCH_LIBTORCH_LIB").expect("torch-sys passes DEP_TCH_LIBTORCH_LIB");
    let root = libtorch_root(&libtorch_rpath::library_dir(Path::new(&lib)));
    // The same flags torch-sys compiles its own bridge with, plus USE_C10D_GLOO (without it ProcessGroupGloo.hpp
    // declares nothing). The vendored headers come in as system headers so their warnings stay quiet.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let vendor = Path::new(&manifest).join("csrc/vendor");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .flag("-isystem")
        .flag(vendor.display().to_string())
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag("-DUSE_C10D_GLOO")
        // See `set_timeout_via_vtable` in the bridge: no inlined copy of a header method that calls into gloo.
        .flag_if_supported("-fno-devirtualize-speculatively")
        .file("csrc/c10d_bridge.cpp")
        .compile("bertmt_c10d");
}

/// The libtorch root (holding `include/`) above its `lib/` directory.
fn libtorch_root(lib: &Path) -> PathBuf {
    lib.parent().map(Path::to_path_buf).unwrap_or_else(|| lib.to_path_buf())
}
