//! An rpath to libtorch for this crate's test, bench and example binaries.
fn main() {
    libtorch_rpath::emit();
}
