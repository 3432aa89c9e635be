//! seqeval's `tests/test_v1.py` and `tests/test_metrics.py` cases and its
//! docstring examples, ported: entity types, per-type and averaged scores,
//! the report text, default-mode (`get_entities`) extraction and accuracy.

use metrics::{
    entity_report, extract_entities, token_accuracy, EntityMode, EntityReport, Metric, MetricsError, Scheme,
    UndefinedMetric, UndefinedReason,
};

const STRICT_IOB2: EntityMode = EntityMode::Strict(Scheme::Iob2);

/// Sentences of tags.
type Sentences<'a> = Vec<Vec<&'a str>>;
/// `(type, start, end)` triples.
type Spans<'a> = Vec<(&'a str, usize, usize)>;

fn report(y_true: &[Vec<&str>], y_pred: &[Vec<&str>], mode: EntityMode) -> EntityReport {
    match entity_report(y_true, y_pred, mode) {
        Ok(report) => report,
        Err(error) => panic!("{error}"),
    }
}

fn type_names(report: &EntityReport) -> Vec<&str> {
    report.types.iter().map(|t| t.entity_type.as_str()).collect()
}

/// Entities with seqeval's `get_entities` convention: inclusive end, offsets
/// over the sentences joined with one `O` between them.
fn get_entities(sequences: &[Vec<&str>]) -> Vec<(String, usize, usize)> {
    let mut offsets = Vec::new();
    let mut position = 0;
    for sentence in sequences {
        offsets.push(position);
        position += sentence.len() + 1;
    }
    match extract_entities(sequences, EntityMode::Default) {
        Ok(found) => found
            .into_iter()
            .map(|e| {
                let base = offsets.get(e.sentence).copied().unwrap_or(0);
                (e.entity_type, base + e.start, base + e.end - 1)
            })
            .collect(),
        Err(error) => panic!("{error}"),
    }
}

fn owned(expected: &[(&str, usize, usize)]) -> Vec<(String, usize, usize)> {
    expected.iter().map(|&(t, s, e)| (t.to_owned(), s, e)).collect()
}

#[test]
fn unique_labels() {
    let cases: [(Sentences, Sentences, Vec<&str>); 6] = [
        (vec![vec!["B-PER"]], vec![vec!["O"]], vec!["PER"]),
        (vec![vec!["O"]], vec![vec!["B-PER"]], vec!["PER"]),
        (vec![vec!["B-PER"]], vec![vec!["B-PER"]], vec!["PER"]),
        (vec![vec!["B-PER", "O"]], vec![vec!["O", "O"]], vec!["PER"]),
        (vec![vec!["B-PER", "I-PER"]], vec![vec!["O", "O"]], vec!["PER"]),
        (vec![vec!["B-PER"]], vec![vec!["B-ORG"]], vec!["ORG", "PER"]),
    ];
    for (y_true, y_pred, expected) in cases {
        let report = report(&y_true, &y_pred, STRICT_IOB2);
        assert_eq!(type_names(&report), expected, "{y_true:?} / {y_pred:?}");
    }
}

#[test]
fn types_sort_by_code_point_like_python() {
    let y_true = vec![vec!["B-b", "B-組織", "B-B", "B-_", "B-Ä", "B-a"]];
    let report = report(&y_true, &y_true, STRICT_IOB2);
    assert_eq!(type_names(&report), vec!["B", "_", "a", "b", "Ä", "組織"]);
}

#[test]
fn scores_of_test_v1() {
    let y_true = vec![vec!["B-A", "B-B", "O", "B-A"]];
    let y_pred = vec![vec!["O", "B-B", "B-C", "B-A"]];
    let r = report(&y_true, &y_pred, STRICT_IOB2);
    let precisions: Vec<f64> = r.types.iter().map(|t| t.precision).collect();
    let recalls: Vec<f64> = r.types.iter().map(|t| t.recall).collect();
    let supports: Vec<usize> = r.types.iter().map(|t| t.support).collect();
    assert_eq!(type_names(&r), vec!["A", "B", "C"]);
    assert_eq!(precisions, vec![1.0, 1.0, 0.0]);
    assert_eq!(recalls, vec![0.5, 1.0, 0.0]);
    assert_eq!(supports, vec![2, 1, 0]);
    // output_dict values of test_v1, exactly.
    assert_eq!(r.types[0].f1, 0.6666666666666666);
    assert_eq!(r.types[1].f1, 1.0);
    assert_eq!(r.types[2].f1, 0.0);
    let micro = (r.micro_avg.precision, r.micro_avg.recall, r.micro_avg.f1);
    assert_eq!(micro, (0.6666666666666666, 0.6666666666666666, 0.6666666666666666));
    let macro_avg = (r.macro_avg.precision, r.macro_avg.recall, r.macro_avg.f1);
    assert_eq!(macro_avg, (0.6666666666666666, 0.5, 0.5555555555555555));
    let weighted = (r.weighted_avg.precision, r.weighted_avg.recall, r.weighted_avg.f1);
    assert_eq!(weighted, (1.0, 0.6666666666666666, 0.7777777777777777));
    for avg in [r.micro_avg, r.macro_avg, r.weighted_avg] {
        assert_eq!(avg.support, 3);
    }
    // C has no true entity; seqeval warns (UndefinedMetricWarning) and reports 0.
    assert_eq!(
        r.undefined_metrics,
        vec![UndefinedMetric { label: "C".to_owned(), metric: Metric::Recall, reason: UndefinedReason::NoTrueSamples }]
    );
}

#[test]
fn report_text_of_test_v1() {
    let y_true = vec![vec!["B-A", "B-B", "O", "B-A"]];
    let y_pred = vec![vec!["O", "B-B", "B-C", "B-A"]];
    let r = report(&y_true, &y_pred, STRICT_IOB2);
    let expected = "              precision    recall  f1-score   support

           A       1.00      0.50      0.67         2
           B       1.00      1.00      1.00         1
           C       0.00      0.00      0.00         0

   micro avg       0.67      0.67      0.67         3
   macro avg       0.67      0.50      0.56         3
weighted avg       1.00      0.67      0.78         3
";
    assert_eq!(r.to_string(), expected);
    let four_digits = "              precision    recall  f1-score   support

           A     1.0000    0.5000    0.6667         2
           B     1.0000    1.0000    1.0000         1
           C     0.0000    0.0000    0.0000         0

   micro avg     0.6667    0.6667    0.6667         3
   macro avg     0.6667    0.5000    0.5556         3
weighted avg     1.0000    0.6667    0.7778         3
";
    assert_eq!(r.to_text(4), four_digits);
}

#[test]
fn weighted_true_sum_zero() {
    let r = report(&[vec!["O"]], &[vec!["B-PER"]], STRICT_IOB2);
    let weighted = r.weighted_avg;
    assert_eq!((weighted.precision, weighted.recall, weighted.f1, weighted.support), (0.0, 0.0, 0.0, 0));
    assert!(r.undefined_metrics.contains(&UndefinedMetric {
        label: "weighted avg".to_owned(),
        metric: Metric::Recall,
        reason: UndefinedReason::ZeroTotalSupport,
    }));
}

#[test]
fn no_entity_at_all_gives_zeros_and_flags_the_averages() {
    // seqeval: micro (0, 0, 0, 0); weighted (0.0, 0.0, 0.0, 0); macro is NaN and the report raises.
    let r = report(&[vec!["O", "O"]], &[vec!["O", "I-PER"]], STRICT_IOB2);
    assert!(r.types.is_empty());
    for avg in [r.micro_avg, r.macro_avg, r.weighted_avg] {
        assert_eq!((avg.precision, avg.recall, avg.f1, avg.support), (0.0, 0.0, 0.0, 0));
    }
    assert!(r.undefined_metrics.contains(&UndefinedMetric {
        label: "macro avg".to_owned(),
        metric: Metric::FScore,
        reason: UndefinedReason::NoLabels,
    }));
    assert!(r.undefined_metrics.contains(&UndefinedMetric {
        label: "micro avg".to_owned(),
        metric: Metric::Precision,
        reason: UndefinedReason::NoPredictedSamples,
    }));
}

#[test]
fn docstring_f1_example_default_mode() {
    let y_true = vec![vec!["O", "O", "B-MISC", "I-MISC", "B-MISC", "O", "O"], vec!["B-PER", "I-PER", "O"]];
    let y_pred = vec![vec!["O", "O", "B-MISC", "I-MISC", "B-MISC", "I-MISC", "O"], vec!["B-PER", "I-PER", "O"]];
    let r = report(&y_true, &y_pred, EntityMode::Default);
    assert_eq!(r.micro_avg.f1, 0.6666666666666666);
    assert_eq!(r.macro_avg.f1, 0.75);
    assert_eq!(r.weighted_avg.f1, 0.6666666666666666);
    let f1s: Vec<f64> = r.types.iter().map(|t| t.f1).collect();
    assert_eq!(f1s, vec![0.5, 1.0]);
}

#[test]
fn docstring_report_and_accuracy_default_mode() {
    let y_true = vec![vec!["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], vec!["B-PER", "I-PER", "O"]];
    let y_pred = vec![vec!["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], vec!["B-PER", "I-PER", "O"]];
    let r = report(&y_true, &y_pred, EntityMode::Default);
    let expected = "              precision    recall  f1-score   support

        MISC       0.00      0.00      0.00         1
         PER       1.00      1.00      1.00         1

   micro avg       0.50      0.50      0.50         2
   macro avg       0.50      0.50      0.50         2
weighted avg       0.50      0.50      0.50         2
";
    assert_eq!(r.to_string(), expected);
    for avg in [r.micro_avg, r.macro_avg, r.weighted_avg] {
        assert_eq!((avg.precision, avg.recall, avg.f1, avg.support), (0.5, 0.5, 0.5, 2));
    }
    assert_eq!(token_accuracy(&y_true, &y_pred), Ok(0.8));
}

#[test]
fn get_entities_cases() {
    let cases: [(Sentences, Spans); 4] = [
        (
            vec![vec!["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O", "B-PER", "I-PER"]],
            vec![("MISC", 3, 5), ("PER", 7, 8)],
        ),
        (vec![vec!["B-PER", "I-PER", "O", "B-LOC"]], vec![("PER", 0, 1), ("LOC", 3, 3)]),
        // test_get_entities_with_only_IOB
        (vec![vec!["O", "O", "O", "B", "I", "I", "O"], vec!["B", "I", "O"]], vec![("_", 3, 5), ("_", 8, 9)]),
        (vec![vec!["O"], vec![]], vec![]),
    ];
    for (sequences, expected) in cases {
        assert_eq!(get_entities(&sequences), owned(&expected), "{sequences:?}");
    }
}

#[test]
fn get_entities_with_e_s_prefixes_and_types_without_name() {
    // Expected values printed by seqeval 1.2.2's get_entities.
    let cases: [(Vec<&str>, Spans); 6] = [
        (
            vec!["B-PER", "E-PER", "S-LOC", "I-LOC", "E-LOC", "O", "E-ORG"],
            vec![("PER", 0, 1), ("LOC", 2, 2), ("LOC", 3, 4), ("ORG", 6, 6)],
        ),
        (vec!["I-PER", "I-PER", "B-PER", "I-ORG"], vec![("PER", 0, 1), ("PER", 2, 2), ("ORG", 3, 3)]),
        (vec!["S-PER", "S-PER", "E-PER", "I-PER"], vec![("PER", 0, 0), ("PER", 1, 1), ("PER", 2, 2), ("PER", 3, 3)]),
        (vec!["B", "I", "E", "S", "I", "O", "E"], vec![("_", 0, 2), ("_", 3, 3), ("_", 4, 4), ("_", 6, 6)]),
        (vec!["B-PER", "I-", "I-PER", "B-"], vec![("PER", 0, 0), ("_", 1, 1), ("PER", 2, 2), ("_", 3, 3)]),
        (vec!["O", "I-MISC", "B-MISC", "I-LOC", "E-LOC"], vec![("MISC", 1, 1), ("MISC", 2, 2), ("LOC", 3, 4)]),
    ];
    for (tags, expected) in cases {
        assert_eq!(get_entities(std::slice::from_ref(&tags)), owned(&expected), "{tags:?}");
    }
}

#[test]
fn non_entity_tags_are_rejected_in_default_mode() {
    // test_get_entities_with_non_NE_input: seqeval warns "seems not to be NE tag".
    let y_true = vec![vec!["O", "O", "O", "MISC", "MISC", "MISC", "O", "PER", "PER"]];
    match extract_entities(&y_true, EntityMode::Default) {
        Err(MetricsError::InvalidTag { sentence, token, tag, .. }) => {
            assert_eq!((sentence, token, tag.as_str()), (0, 3, "MISC"))
        }
        other => panic!("expected an invalid tag, got {other:?}"),
    }
}

#[test]
fn strict_and_default_modes_differ_on_stray_inside_tags() {
    let y_true = vec![vec!["B-PER", "I-PER", "O", "B-LOC"]];
    let y_pred = vec![vec!["B-PER", "I-PER", "O", "I-LOC"]];
    let strict = report(&y_true, &y_pred, STRICT_IOB2);
    let default = report(&y_true, &y_pred, EntityMode::Default);
    assert_eq!(strict.micro_avg.recall, 0.5);
    assert_eq!(strict.micro_avg.precision, 1.0);
    assert_eq!(default.micro_avg.recall, 1.0);
    assert_eq!(default.micro_avg.f1, 1.0);
}

#[test]
fn iobes_scheme_scores() {
    let y_true = vec![vec!["B-PER", "E-PER", "O", "S-LOC"]];
    let y_pred = vec![vec!["B-PER", "I-PER", "O", "S-LOC"]];
    let r = report(&y_true, &y_pred, EntityMode::Strict(Scheme::Iobes));
    assert_eq!(type_names(&r), vec!["LOC", "PER"]);
    assert_eq!(r.types[0].true_positives, 1);
    assert_eq!(r.types[1].predicted, 0, "B-PER I-PER O is not an IOBES entity");
    assert_eq!(r.micro_avg.recall, 0.5);
}

#[test]
fn gold_as_strings_and_predictions_as_str_slices() {
    let y_true: Vec<Vec<String>> = vec![vec!["B-PER".to_owned(), "I-PER".to_owned(), "O".to_owned()]];
    let y_pred: [&[&str]; 1] = [&["B-PER", "I-PER", "B-LOC"]];
    let r = match entity_report(&y_true, &y_pred, STRICT_IOB2) {
        Ok(r) => r,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(type_names(&r), vec!["LOC", "PER"]);
    assert_eq!(r.micro_avg.precision, 0.5);
    assert_eq!(token_accuracy(&y_true, &y_pred), Ok(2.0 / 3.0));
}
