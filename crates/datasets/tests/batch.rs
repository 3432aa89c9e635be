//! Padding, masks, bucketing, splits and sampling (no torch; see `tensors.rs`).

use datasets::{
    pad_batch, sample_indices, train_test_split, BatchLabels, BucketSampler, DatasetError, Encoded, PreparedDataset,
    ProcessedDataset, Target, TestSize, TokenTargets, IGNORE_INDEX,
};
use proptest::prelude::*;

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
fn pads_to_the_longest_in_the_batch_with_masks() {
    let examples = [
        class_example(&[2, 10, 11, 3], 1),
        class_example(&[2, 12, 3], 0),
        class_example(&[2, 13, 14, 15, 16, 17, 3], 1),
    ];
    let batch = pad_batch(&examples, &[1, 0], 9).unwrap();
    assert_eq!((batch.batch_size, batch.seq_len), (2, 4));
    assert_eq!(batch.input_ids, [2, 12, 3, 9, 2, 10, 11, 3]);
    assert_eq!(batch.attention_mask, [1, 1, 1, 0, 1, 1, 1, 1]);
    assert_eq!(batch.token_type_ids, [0; 8]);
    assert_eq!(batch.labels, BatchLabels::Classes(vec![0, 1]));
    assert_eq!(batch.indices, [1, 0]);
}

#[test]
fn token_labels_are_ignored_at_padding() {
    let x = IGNORE_INDEX;
    let examples = [token_example(&[2, 10, 3], &[x, 5, x]), token_example(&[2, 10, 11, 12, 3], &[x, 1, 2, x, x])];
    let batch = pad_batch(&examples, &[0, 1], 0).unwrap();
    assert_eq!(batch.seq_len, 5);
    let x = i64::from(x);
    assert_eq!(batch.labels, BatchLabels::Tokens(vec![x, 5, x, x, x, x, 1, 2, x, x]));
    assert_eq!(batch.token_type_ids, [0, 0, 1, 0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(batch.attention_mask, [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
}

#[test]
fn bad_batches_are_errors() {
    let examples = [class_example(&[2, 3], 0), token_example(&[2, 3], &[-100, -100])];
    assert!(matches!(pad_batch(&examples, &[0, 1], 0), Err(DatasetError::Batch(_))));
    assert!(matches!(pad_batch(&examples, &[5], 0), Err(DatasetError::Batch(_))));
    assert!(matches!(pad_batch(&examples, &[], 0), Err(DatasetError::Batch(_))));
}

fn lengths(n: usize) -> Vec<usize> {
    (0..n).map(|i| 3 + (i * 37) % 120).collect()
}

#[test]
fn bucketed_training_batches_partition_and_pad_less() {
    let lens = lengths(1000);
    let indices: Vec<usize> = (0..1000).collect();
    let sampler = BucketSampler { batch_size: 16, bucket_batches: 10 };
    let batches = sampler.train_batches(&indices, &lens, 7, 0).unwrap();
    let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
    seen.sort_unstable();
    assert_eq!(seen, indices);
    assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 16));
    assert_eq!(batches, sampler.train_batches(&indices, &lens, 7, 0).unwrap());
    assert_ne!(batches, sampler.train_batches(&indices, &lens, 7, 1).unwrap());
    assert_ne!(batches, sampler.train_batches(&indices, &lens, 8, 0).unwrap());
    // Padded cells: bucketed batches vs. plain shuffled batches of the same size.
    let padded = |batches: &[Vec<usize>]| -> usize {
        batches.iter().map(|b| b.len() * b.iter().map(|&i| lens[i]).max().unwrap_or(0)).sum()
    };
    let mut shuffled = indices.clone();
    datasets::shuffle(&mut shuffled, &mut datasets::seeded_rng(7, 0));
    let plain: Vec<Vec<usize>> = shuffled.chunks(16).map(<[usize]>::to_vec).collect();
    assert!(padded(&batches) * 10 < padded(&plain) * 7, "{} vs {}", padded(&batches), padded(&plain));
}

#[test]
fn evaluation_batches_are_sorted_and_deterministic() {
    let lens = [5, 9, 5, 1, 9];
    let sampler = BucketSampler::new(2);
    let batches = sampler.eval_batches(&[0, 1, 2, 3, 4], &lens).unwrap();
    assert_eq!(batches, [vec![1, 4], vec![0, 2], vec![3]]);
    assert!(sampler.eval_batches(&[7], &lens).is_err());
    assert!(BucketSampler::new(0).eval_batches(&[0], &lens).is_err());
}

#[test]
fn split_and_sampling_are_seeded() {
    let a = train_test_split(1000, TestSize::Count(100), 42).unwrap();
    assert_eq!(a, train_test_split(1000, TestSize::Count(100), 42).unwrap());
    assert_ne!(a, train_test_split(1000, TestSize::Count(100), 43).unwrap());
    assert_eq!((a.train.len(), a.test.len()), (900, 100));
    let mut all: Vec<usize> = a.train.iter().chain(&a.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert!(a.test.windows(2).all(|w| w[0] < w[1]));
    // Fractions round up; a split must leave training data.
    assert_eq!(train_test_split(10, TestSize::Fraction(0.25), 1).unwrap().test.len(), 3);
    assert!(train_test_split(10, TestSize::Count(10), 1).is_err());
    assert!(train_test_split(0, TestSize::Count(0), 1).is_err());
    for bad in [0.0, 1.0, f64::NAN, -0.5] {
        assert!(train_test_split(10, TestSize::Fraction(bad), 1).is_err());
    }
    // Sampling keeps max(1, floor(n * ratio)) in order, deterministically.
    let s = sample_indices(&a.train, 0.1, 42, 2).unwrap();
    assert_eq!(s.len(), 90);
    assert!(s.windows(2).all(|w| w[0] < w[1]) && s.iter().all(|i| a.train.contains(i)));
    assert_eq!(s, sample_indices(&a.train, 0.1, 42, 2).unwrap());
    assert_ne!(s, sample_indices(&a.train, 0.1, 42, 3).unwrap());
    assert_eq!(sample_indices(&a.test, 0.001, 42, 2).unwrap().len(), 1);
    assert_eq!(sample_indices(&a.test, 1.0, 42, 2).unwrap(), a.test);
    assert!(sample_indices(&a.test, 0.0, 42, 2).is_err());
    assert!(sample_indices(&a.test, 1.5, 42, 2).is_err());
}

fn prepared(n: usize, test: &[usize]) -> PreparedDataset {
    let examples = (0..n).map(|i| class_example(&[2, 10 + i as u32 % 5, 3], (i % 2) as u32)).collect();
    let data = ProcessedDataset::new(examples, vec!["a".into(), "b".into()], 0);
    let train = (0..n).filter(|i| !test.contains(i)).collect();
    PreparedDataset::from_split(data, train, Vec::new(), test.to_vec()).expect("a valid split")
}

#[test]
fn the_validation_set_is_held_out_of_training_reproducibly_and_never_from_test() {
    let test: Vec<usize> = (0..200).step_by(10).collect();
    let mut data = prepared(200, &test);
    let train_before = data.train().to_vec();
    data.hold_out_validation(0.1, 42).unwrap();
    assert_eq!((data.train().len(), data.validation().len(), data.test().len()), (162, 18, 20));
    assert!(data.validation().iter().all(|i| train_before.contains(i)), "validation comes from training examples");
    assert!(data.validation().iter().all(|i| !data.train().contains(i) && !data.test().contains(i)), "disjoint");
    assert!(data.validation().windows(2).all(|w| w[0] < w[1]) && data.train().windows(2).all(|w| w[0] < w[1]));
    assert_eq!(data.test(), test, "the test set is untouched");

    let mut again = prepared(200, &test);
    again.hold_out_validation(0.1, 42).unwrap();
    assert_eq!((again.train(), &again.validation()), (data.train(), &data.validation()), "same seed, same split");
    let mut other = prepared(200, &test);
    other.hold_out_validation(0.1, 43).unwrap();
    assert_ne!(other.validation(), data.validation(), "another seed, another split");
    // Holding out again re-draws from the whole training pool; 0 gives it all back.
    data.hold_out_validation(0.1, 42).unwrap();
    assert_eq!(data.validation(), again.validation());
    data.hold_out_validation(0.0, 42).unwrap();
    assert_eq!((data.train().to_vec(), data.validation().len()), (train_before.clone(), 0));

    for bad in [1.0, -0.1, f64::NAN] {
        assert!(matches!(data.hold_out_validation(bad, 1), Err(DatasetError::InvalidOption(_))), "{bad}");
    }
    let mut tiny = prepared(3, &[0]);
    let error = tiny.hold_out_validation(0.9, 1).unwrap_err().to_string();
    assert!(error.contains("leaves none to train on"), "{error}");
    assert_eq!(tiny.train(), [1, 2], "a failed hold-out keeps the training examples");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn padding_invariants(lens in prop::collection::vec(1usize..40, 1..12), pad in 0u32..5) {
        let examples: Vec<Encoded> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| token_example(&vec![100 + i as u32; n], &vec![1; n]))
            .collect();
        let indices: Vec<usize> = (0..examples.len()).rev().collect();
        let batch = pad_batch(&examples, &indices, pad).unwrap();
        let longest = *lens.iter().max().unwrap();
        prop_assert_eq!(batch.seq_len, longest);
        prop_assert_eq!(batch.attention_mask.iter().sum::<i64>() as usize, lens.iter().sum::<usize>());
        let BatchLabels::Tokens(labels) = &batch.labels else { panic!("token labels") };
        for (cell, (&mask, (&id, &label))) in batch
            .attention_mask
            .iter()
            .zip(batch.input_ids.iter().zip(labels))
            .enumerate()
        {
            let row = cell / longest;
            if mask == 0 {
                prop_assert_eq!(id, i64::from(pad));
                prop_assert_eq!(label, i64::from(IGNORE_INDEX));
            } else {
                prop_assert_eq!(id, 100 + indices[row] as i64);
                prop_assert_eq!(label, 1);
            }
        }
    }
}

#[test]
fn a_split_must_name_existing_examples_once() {
    let data = || ProcessedDataset::new((0..4).map(|i| class_example(&[2, 10 + i, 3], i % 2)).collect(), vec![], 0);
    let error = PreparedDataset::from_split(data(), vec![0, 1], vec![], vec![4]).unwrap_err().to_string();
    assert!(error.contains("the test split names example 4, but there are 4"), "{error}");
    let error = PreparedDataset::from_split(data(), vec![0, 1], vec![1], vec![2]).unwrap_err().to_string();
    assert!(error.contains("example 1 is in the train split and the validation split"), "{error}");
    let split = PreparedDataset::from_split(data(), vec![3, 0], vec![], vec![1]).expect("valid");
    assert_eq!((split.train(), split.test()), (&[0, 3][..], &[1][..]), "sorted; example 2 is in no split");
    assert_eq!(split.data().stats().tokens, 12);
}
