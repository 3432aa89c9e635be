//! Property tests: weight files and reference-output files with any bytes (random, or a valid file cut short or
//! overwritten) load or fail with an error; they never panic.

use encoder::read_checkpoint;
use encoder::reference::ReferenceOutputs;
use proptest::prelude::*;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// A small valid safetensors file, as bytes.
fn valid_weights(dir: &Path) -> Vec<u8> {
    let path = dir.join("valid.safetensors");
    let tensors = [
        ("embeddings.word_embeddings.weight", Tensor::ones([4, 3], (Kind::Float, Device::Cpu))),
        ("input_ids", Tensor::arange(5, (Kind::Int64, Device::Cpu))),
    ];
    Tensor::write_safetensors(&tensors, &path).expect("written");
    std::fs::read(path).expect("read back")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn any_weight_or_reference_file_loads_or_errs(
        random in proptest::collection::vec(any::<u8>(), 0..1024),
        cut in 0.0..1.0f64,
        edits in proptest::collection::vec((0.0..1.0f64, any::<u8>()), 0..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut damaged = valid_weights(dir.path());
        for (at, byte) in edits {
            let index = ((damaged.len() as f64) * at) as usize;
            let last = damaged.len() - 1;
            damaged[index.min(last)] = byte;
        }
        damaged.truncate(((damaged.len() as f64) * cut) as usize);
        for (name, bytes) in [("random.safetensors", &random), ("damaged.safetensors", &damaged)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let _ = read_checkpoint(&path);
            let _ = ReferenceOutputs::read(&path);
        }
    }
}
