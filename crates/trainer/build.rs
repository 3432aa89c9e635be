//! Compiles the small C++ bridge to libtorch ops that `tch` does not bind (`csrc/`), against the libtorch that
//! `torch-sys` linked, and gives this crate's test, bench and example binaries an rpath to it.
use std::path::{Path, PathBuf};

fn main() {
    libtorch_rpath::emit();
    println!("cargo:rerun-if-changed=csrc/fused_adam.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = std::env::var_os("DEP_TCH_LIBTORCH_LIB").expect("torch-sys passes DEP_TCH_LIBTORCH_LIB");
    let root = libtorch_root(&libtorch_rpath::library_dir(Path::new(&lib)));
    // The same flags torch-sys compiles its own bridge with.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/fused_adam.cpp")
        .compile("bertmt_torch_ops");
}

/// The libtorch root (holding `include/`) above its `lib/` directory.
fn libtorch_root(lib: &Path) -> PathBuf {
    lib.parent().map(Path::to_path_buf).unwrap_or_else(|| lib.to_path_buf())
}
