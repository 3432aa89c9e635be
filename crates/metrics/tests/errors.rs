//! Typed errors: invalid tags (with side, sentence and token), length
//! mismatches (naming the sentence), empty input, class index out of range.

use metrics::{
    accuracy, classification_report, confusion_matrix, entity_report, extract_entities, token_accuracy, EntityMode,
    InputSide, InvalidTagReason, MetricsError, Scheme,
};

const STRICT_IOB2: EntityMode = EntityMode::Strict(Scheme::Iob2);

#[test]
fn unknown_prefix_is_an_error_naming_sentence_and_token() {
    let y_true = vec![vec!["O", "B-PER"], vec!["O", "O", "X-PER"]];
    let y_pred = vec![vec!["O", "B-PER"], vec!["O", "O", "O"]];
    for mode in [STRICT_IOB2, EntityMode::Default] {
        let error = entity_report(&y_true, &y_pred, mode);
        let expected_reason = match mode {
            EntityMode::Default => InvalidTagReason::NotAnEntityTag,
            EntityMode::Strict(_) => InvalidTagReason::UnknownPrefix,
        };
        assert_eq!(
            error,
            Err(MetricsError::InvalidTag {
                side: InputSide::YTrue,
                sentence: 1,
                token: 2,
                tag: "X-PER".to_owned(),
                reason: expected_reason,
            }),
            "{mode}"
        );
    }
}

#[test]
fn error_message_is_readable() {
    let error = entity_report(&[vec!["O"]], &[vec!["S-PER"]], STRICT_IOB2);
    let message = match error {
        Err(error) => error.to_string(),
        Ok(_) => panic!("S-PER is not IOB2"),
    };
    assert_eq!(
        message,
        "invalid tag \"S-PER\" in y_pred, sentence 0, token 0: prefix not allowed in IOB2 (allowed: I, O, B)"
    );
}

#[test]
fn invalid_y_true_is_reported_before_invalid_y_pred() {
    let y_true = vec![vec!["O"], vec!["O"], vec!["E-LOC"]];
    let y_pred = vec![vec!["O"], vec!["bogus"], vec!["O"]];
    match entity_report(&y_true, &y_pred, STRICT_IOB2) {
        Err(MetricsError::InvalidTag { side, sentence, token, .. }) => {
            assert_eq!((side, sentence, token), (InputSide::YTrue, 2, 0))
        }
        other => panic!("expected an invalid tag, got {other:?}"),
    }
}

#[test]
fn prefix_outside_the_scheme_is_an_error() {
    for (tag, scheme) in [
        ("S-PER", Scheme::Iob2),
        ("E-PER", Scheme::Iob1),
        ("B-PER", Scheme::Ioe2),
        ("U-PER", Scheme::Iobes),
        ("S-PER", Scheme::Bilou),
    ] {
        let result = extract_entities(&[vec!["O", tag]], EntityMode::Strict(scheme));
        assert_eq!(
            result,
            Err(MetricsError::InvalidTag {
                side: InputSide::Sequences,
                sentence: 0,
                token: 1,
                tag: tag.to_owned(),
                reason: InvalidTagReason::PrefixNotInScheme { scheme },
            })
        );
    }
}

#[test]
fn default_mode_rejects_what_seqeval_warns_about() {
    for tag in ["O-PER", "PER", "b-PER", "U-PER", "BPER", "I_PER", ""] {
        let result = extract_entities(&[vec![tag]], EntityMode::Default);
        assert!(matches!(result, Err(MetricsError::InvalidTag { .. })), "{tag:?} gave {result:?}");
    }
    assert_eq!(
        extract_entities(&[vec![""]], STRICT_IOB2),
        Err(MetricsError::InvalidTag {
            side: InputSide::Sequences,
            sentence: 0,
            token: 0,
            tag: String::new(),
            reason: InvalidTagReason::Empty,
        })
    );
}

#[test]
fn sentence_length_mismatch_names_the_sentence() {
    let y_true = vec![vec!["O"], vec!["B-PER", "O"], vec!["O"]];
    let y_pred = vec![vec!["O"], vec!["B-PER"], vec!["O"]];
    let expected = Err(MetricsError::SentenceLengthMismatch { sentence: 1, y_true: 2, y_pred: 1 });
    assert_eq!(entity_report(&y_true, &y_pred, STRICT_IOB2), expected);
    assert_eq!(
        token_accuracy(&y_true, &y_pred),
        Err(MetricsError::SentenceLengthMismatch { sentence: 1, y_true: 2, y_pred: 1 })
    );
}

#[test]
fn sentence_count_mismatch() {
    let y_true = vec![vec!["O"], vec!["O"]];
    let y_pred = vec![vec!["O"]];
    assert_eq!(
        entity_report(&y_true, &y_pred, EntityMode::Default),
        Err(MetricsError::LengthMismatch { y_true: 2, y_pred: 1 })
    );
}

#[test]
fn empty_entity_input() {
    let none: Vec<Vec<&str>> = Vec::new();
    assert_eq!(entity_report(&none, &none, STRICT_IOB2), Err(MetricsError::EmptyInput));
    let empty_sentences: Vec<Vec<&str>> = vec![vec![], vec![]];
    assert_eq!(entity_report(&empty_sentences, &empty_sentences, EntityMode::Default), Err(MetricsError::EmptyInput));
    assert_eq!(token_accuracy(&none, &none), Err(MetricsError::EmptyInput));
}

#[test]
fn classification_length_mismatch_and_empty_input() {
    let names = ["a", "b"];
    assert_eq!(
        classification_report(&[0, 1], &[0], &names),
        Err(MetricsError::LengthMismatch { y_true: 2, y_pred: 1 })
    );
    assert_eq!(classification_report(&[], &[], &names), Err(MetricsError::EmptyInput));
    assert_eq!(accuracy::<usize>(&[], &[]), Err(MetricsError::EmptyInput));
    assert_eq!(accuracy(&[1], &[1, 2]), Err(MetricsError::LengthMismatch { y_true: 1, y_pred: 2 }));
}

#[test]
fn class_index_out_of_range() {
    assert_eq!(
        classification_report(&[0, 1, 0], &[0, 2, 0], &["a", "b"]),
        Err(MetricsError::ClassIndexOutOfRange { side: InputSide::YPred, position: 1, index: 2, num_classes: 2 })
    );
    assert_eq!(
        confusion_matrix(&[5], &[0], 3),
        Err(MetricsError::ClassIndexOutOfRange { side: InputSide::YTrue, position: 0, index: 5, num_classes: 3 })
    );
    let no_names: [&str; 0] = [];
    assert!(matches!(classification_report(&[0], &[0], &no_names), Err(MetricsError::ClassIndexOutOfRange { .. })));
}
