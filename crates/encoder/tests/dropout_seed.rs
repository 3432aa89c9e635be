//! `tch::manual_seed` reproduces `encoder::model::dropout`'s masks. Its own test binary: libtorch's generator is
//! global, and tests running in parallel threads of one binary would draw from it in between.

use encoder::model::dropout;
use tch::{Device, Kind, Tensor};

#[test]
fn a_seed_reproduces_the_mask() {
    let input = Tensor::randn([3, 7, 11], (Kind::Float, Device::Cpu));
    tch::manual_seed(3);
    let first = dropout(&input, 0.3, true);
    tch::manual_seed(3);
    assert!(first.equal(&dropout(&input, 0.3, true)));
    // A different seed gives a different mask.
    tch::manual_seed(4);
    assert!(!first.equal(&dropout(&input, 0.3, true)));
}
