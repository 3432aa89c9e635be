//! Conversion of padded batches to `tch` tensors (default `tch` feature).
#![cfg(feature = "tch")]

mod common;

use common::{tokenizer, write};
use datasets::{
    pad_batch, prepare_ner, BucketSampler, Encoded, NerOptions, PrepareOptions, Target, TestSize, TokenTargets,
};
use tch::{Device, Kind};

fn class_example(ids: &[u32], class: u32) -> Encoded {
    Encoded { input_ids: ids.to_vec(), type_ids: vec![0; ids.len()], target: Target::Class(class) }
}

fn token_example(ids: &[u32], labels: &[i32]) -> Encoded {
    Encoded {
        input_ids: ids.to_vec(),
        type_ids: (0..ids.len()).map(|i| u8::from(i >= 2)).collect(),
        target: Target::Tokens(TokenTargets {
            labels: labels.to_vec(),
            word_ids: vec![None; ids.len()],
            word_labels: Vec::new(),
            windows: Vec::new(),
        }),
    }
}

#[test]
fn tensors_have_the_encoder_shapes() {
    let examples = [class_example(&[2, 10, 3], 1), class_example(&[2, 3], 0)];
    let t = pad_batch(&examples, &[0, 1], 0).unwrap().to_tensors(Device::Cpu).unwrap();
    for tensor in [&t.input_ids, &t.attention_mask, &t.token_type_ids] {
        assert_eq!(tensor.size(), [2, 3]);
        assert_eq!(tensor.kind(), Kind::Int64);
    }
    assert_eq!(t.labels.size(), [2]);
    assert_eq!(Vec::<i64>::try_from(&t.input_ids.view([-1])).unwrap(), [2, 10, 3, 2, 3, 0]);
    assert_eq!(t.attention_mask.sum(Kind::Int64).int64_value(&[]), 5);
    assert_eq!(Vec::<i64>::try_from(&t.labels).unwrap(), [1, 0]);
    let tokens = [token_example(&[2, 10, 3], &[-100, 4, -100])];
    let t = pad_batch(&tokens, &[0], 0).unwrap().to_tensors(Device::Cpu).unwrap();
    assert_eq!(t.labels.size(), [1, 3]);
    assert_eq!(t.indices, [0]);
}

#[test]
fn prepared_ner_to_tensor_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("Sentence #,Word,Tag\n");
    for i in 0..40 {
        csv.push_str(&format!("Sentence: {i},Mrs,B-per\n,Johnson,I-per\n"));
        for _ in 0..(i % 5) {
            csv.push_str(",lives,O\n");
        }
        csv.push_str(",Paris,B-geo\n");
    }
    let input = write(dir.path(), "n.csv", csv.as_bytes());
    let prep = PrepareOptions {
        test_size: TestSize::Fraction(0.25),
        sample_ratio: 0.5,
        cache_dir: None,
        ..PrepareOptions::default()
    };
    let ds = prepare_ner(&input, &NerOptions::default(), &tokenizer(), &prep).unwrap();
    assert_eq!((ds.train().len(), ds.test().len()), (15, 5));
    let sampler = BucketSampler::new(4);
    let batches = sampler.train_batches(ds.train(), &ds.lengths(), 42, 0).unwrap();
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 15);
    for indices in &batches {
        let batch = ds.batch(indices).unwrap();
        let longest = indices.iter().map(|&i| ds.examples()[i].len()).max().unwrap();
        assert_eq!(batch.seq_len, longest);
        let t = batch.to_tensors(Device::Cpu).unwrap();
        let shape = [indices.len() as i64, longest as i64];
        assert_eq!(t.input_ids.size(), shape);
        assert_eq!(t.labels.size(), shape);
        assert_eq!(t.indices, *indices);
    }
}
