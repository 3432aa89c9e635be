//! Tokenization and label alignment with a tiny BERT-style tokenizer.

mod common;

use common::{id, tokenizer};
use datasets::{
    encode_classification, encode_ner, pad_id, ClassificationExample, EncodeOptions, NerLabels, NerSentence, Target,
    TokenTargets, IGNORE_INDEX as X,
};

fn sentence(words: &[&str], tags: &[&str], labels: &NerLabels) -> NerSentence {
    NerSentence {
        id: "s".into(),
        words: words.iter().map(|w| (*w).to_owned()).collect(),
        tags: tags.iter().map(|t| labels.id(t).expect("tag")).collect(),
        pos: None,
    }
}

fn targets(target: &Target) -> &TokenTargets {
    match target {
        Target::Tokens(t) => t,
        Target::Class(_) => panic!("expected token targets"),
    }
}

#[test]
fn tiny_tokenizer_splits_words_into_pieces() {
    let enc = tokenizer().encode("Mrs Johnson, unbelievable!", true).unwrap();
    assert_eq!(
        enc.get_tokens(),
        ["[CLS]", "mr", "##s", "john", "##son", ",", "un", "##believ", "##able", "!", "[SEP]"]
    );
}

#[test]
fn first_sub_token_carries_the_word_label() {
    let labels = NerLabels::gmb();
    let s = sentence(
        &["Mrs", "Johnson", "lives", "in", "Paris", "."],
        &["B-per", "I-per", "O", "O", "B-geo", "O"],
        &labels,
    );
    let (encoded, stats) =
        encode_ner(&tokenizer(), std::slice::from_ref(&s), &labels, &EncodeOptions::default()).unwrap();
    let e = &encoded[0];
    let ids = ["[CLS]", "mr", "##s", "john", "##son", "lives", "in", "paris", ".", "[SEP]"].map(id);
    assert_eq!(e.input_ids, ids);
    assert_eq!(e.type_ids, [0; 10]);
    let t = targets(&e.target);
    let (b_per, i_per, b_geo) = (13, 14, 5);
    assert_eq!(t.labels, [X, b_per, X, i_per, X, 0, 0, b_geo, 0, X]);
    assert_eq!(t.word_ids, [None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(3), Some(4), Some(5), None]);
    assert_eq!(t.word_labels, s.tags);
    assert!(t.windows.is_empty());
    assert_eq!((stats.examples, stats.tokens, stats.truncated_examples), (1, 10, 0));
}

#[test]
fn case_types_mark_every_piece_of_a_capitalized_word_and_nothing_else() {
    let labels = NerLabels::gmb();
    let s = sentence(
        &["Mrs", "Johnson", "lives", "in", "Paris", "."],
        &["B-per", "I-per", "O", "O", "B-geo", "O"],
        &labels,
    );
    let options = EncodeOptions { case_types: true, ..EncodeOptions::default() };
    let (cased, _) = encode_ner(&tokenizer(), std::slice::from_ref(&s), &labels, &options).unwrap();
    // [CLS] mr ##s john ##son lives in paris . [SEP]
    assert_eq!(cased[0].type_ids, [0, 1, 1, 1, 1, 0, 0, 1, 0, 0]);
    // Only the types change: the same ids and labels as without them.
    let (plain, _) = encode_ner(&tokenizer(), &[s], &labels, &EncodeOptions::default()).unwrap();
    assert_eq!((&cased[0].input_ids, &cased[0].target), (&plain[0].input_ids, &plain[0].target));
}

#[test]
fn label_all_tokens_gives_later_pieces_the_inside_label() {
    let labels = NerLabels::gmb();
    let s = sentence(&["Mrs", "Johnson", "unbelievable", "Berlin"], &["B-per", "I-per", "O", "B-geo"], &labels);
    let options = EncodeOptions { label_all_tokens: true, ..EncodeOptions::default() };
    let (encoded, _) = encode_ner(&tokenizer(), &[s], &labels, &options).unwrap();
    let t = targets(&encoded[0].target);
    // [CLS] mr ##s john ##son un ##believ ##able berlin [SEP]
    assert_eq!(t.labels, [X, 13, 14, 14, 14, 0, 0, 0, 5, X]);
}

#[test]
fn label_all_tokens_without_an_inside_tag_is_ignored() {
    // A given label set with B-per but no I-per: later pieces cannot be labelled.
    let labels = NerLabels::new(&["O", "B-per"]).unwrap();
    let s = sentence(&["Johnson"], &["B-per"], &labels);
    let options = EncodeOptions { label_all_tokens: true, ..EncodeOptions::default() };
    let (encoded, _) = encode_ner(&tokenizer(), &[s], &labels, &options).unwrap();
    assert_eq!(targets(&encoded[0].target).labels, [X, 1, X, X]);
}

#[test]
fn a_sentence_longer_than_the_model_is_kept_whole_and_read_in_windows() {
    let labels = NerLabels::gmb();
    let s = sentence(
        &["Mrs", "Johnson", "lives", "in", "Paris", "."],
        &["B-per", "I-per", "O", "O", "B-geo", "O"],
        &labels,
    );
    let whole = ["[CLS]", "mr", "##s", "john", "##son", "lives", "in", "paris", ".", "[SEP]"].map(id);
    for (max_length, stride, windows) in [(6, 1, 3), (5, 1, 4), (6, 2, 3), (10, 2, 0)] {
        let options = EncodeOptions { max_length, stride: Some(stride), ..EncodeOptions::default() };
        let (encoded, stats) = encode_ner(&tokenizer(), std::slice::from_ref(&s), &labels, &options).unwrap();
        let e = &encoded[0];
        assert_eq!(e.input_ids, whole, "max_length {max_length}: nothing is cut off");
        let t = targets(&e.target);
        assert_eq!(t.windows.len(), windows, "max_length {max_length}, stride {stride}");
        assert_eq!(t.labels.len(), e.input_ids.len());
        assert_eq!(stats.windowed_examples, u64::from(windows > 0));
        // Every row fits the model, and every content token is owned by exactly one row.
        let rows = e.rows();
        assert!(rows.iter().all(|row| row.positions.len() <= max_length), "{rows:?}");
        for position in 1..whole.len() - 1 {
            let owners = rows
                .iter()
                .filter(|row| row.positions.iter().zip(&row.owned).any(|(&p, &o)| o && p == position))
                .count();
            assert_eq!(owners, 1, "position {position} at max_length {max_length}");
        }
        assert_eq!(e.longest_row(), if windows > 0 { max_length } else { whole.len() });
    }
    let stuck = EncodeOptions { max_length: 6, stride: Some(4), ..EncodeOptions::default() };
    assert!(
        encode_ner(&tokenizer(), std::slice::from_ref(&s), &labels, &stuck).is_err(),
        "a stride that cannot advance"
    );
}

#[test]
fn classification_truncates_and_does_not_pad() {
    let examples = vec![
        ClassificationExample { text: "I loved it. Great film!".into(), label: 1, row: 2 },
        ClassificationExample { text: "Bad".into(), label: 0, row: 3 },
    ];
    // The tokenizer's own padding/truncation settings are overridden.
    let mut tok = tokenizer();
    tok.with_padding(Some(tokenizers::PaddingParams {
        strategy: tokenizers::PaddingStrategy::Fixed(32),
        ..Default::default()
    }));
    let (encoded, stats) = encode_classification(&tok, &examples, &EncodeOptions::default()).unwrap();
    let first = ["[CLS]", "i", "loved", "it", ".", "great", "film", "!", "[SEP]"].map(id);
    assert_eq!(encoded[0].input_ids, first);
    assert_eq!(encoded[0].target, Target::Class(1));
    assert_eq!(encoded[1].input_ids, ["[CLS]", "bad", "[SEP]"].map(id));
    assert_eq!((stats.truncated_examples, stats.tokens), (0, 12));
    let options = EncodeOptions { max_length: 4, ..EncodeOptions::default() };
    let (encoded, stats) = encode_classification(&tok, &examples, &options).unwrap();
    assert_eq!(encoded[0].input_ids, ["[CLS]", "i", "loved", "[SEP]"].map(id));
    assert_eq!(stats.truncated_examples, 1);
    let zero = EncodeOptions { max_length: 0, ..EncodeOptions::default() };
    assert!(encode_classification(&tok, &examples, &zero).is_err());
}

#[test]
fn pad_id_comes_from_the_tokenizer() {
    let mut tok = tokenizer();
    assert_eq!(pad_id(&tok).unwrap(), 0);
    tok.with_padding(Some(tokenizers::PaddingParams { pad_id: 4, ..Default::default() }));
    assert_eq!(pad_id(&tok).unwrap(), 4);
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let labels = NerLabels::gmb();
    let words = ["Mrs", "Johnson", "lives", "in", "Paris", "Berlin", "New", "York", "."];
    let tags = ["B-per", "I-per", "O", "O", "B-geo", "B-geo", "B-geo", "I-geo", "O"];
    let sentences: Vec<NerSentence> = (0..300)
        .map(|i| {
            let n = 1 + i % words.len();
            sentence(&words[..n], &tags[..n], &labels)
        })
        .collect();
    let examples: Vec<ClassificationExample> = (0..300)
        .map(|i| ClassificationExample {
            text: words[..1 + i % words.len()].join(" "),
            label: (i % 2) as u32,
            row: i as u64,
        })
        .collect();
    let tok = tokenizer();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            (
                encode_ner(&tok, &sentences, &labels, &EncodeOptions::default()).unwrap(),
                encode_classification(&tok, &examples, &EncodeOptions::default()).unwrap(),
            )
        })
    };
    let one = run(1);
    assert_eq!(one, run(3));
    assert_eq!(one.0 .0.len(), 300);
}
