//! Property tests: perfect predictions score 1.0, sentence order does not
//! matter, and micro counts are the sums of per-type counts (and agree with
//! the extracted entities).

use std::collections::HashSet;

use metrics::{
    classification_report, entity_report, extract_entities, token_accuracy, Entity, EntityMode, EntityReport, Scheme,
};
use proptest::prelude::*;

const IOB2_TAGS: &[&str] = &["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B", "I"];
const IOBES_TAGS: &[&str] = &["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "S", "E"];

type Corpus = (Vec<Vec<&'static str>>, Vec<Vec<&'static str>>);

/// A mode, and sentences of (true, predicted) tags valid in that mode.
fn corpus() -> impl Strategy<Value = (EntityMode, Corpus)> {
    let modes = prop_oneof![
        Just((EntityMode::Strict(Scheme::Iob2), IOB2_TAGS)),
        Just((EntityMode::Strict(Scheme::Iobes), IOBES_TAGS)),
        Just((EntityMode::Default, IOBES_TAGS)),
        Just((EntityMode::Default, IOB2_TAGS)),
    ];
    modes.prop_flat_map(|(mode, tags)| {
        let tag = prop::sample::select(tags);
        let sentence = prop::collection::vec((tag.clone(), tag), 1..10);
        prop::collection::vec(sentence, 1..8).prop_map(move |sentences| {
            let y_true = sentences.iter().map(|s| s.iter().map(|(t, _)| *t).collect()).collect();
            let y_pred = sentences.iter().map(|s| s.iter().map(|(_, p)| *p).collect()).collect();
            (mode, (y_true, y_pred))
        })
    })
}

fn score(y_true: &[Vec<&str>], y_pred: &[Vec<&str>], mode: EntityMode) -> EntityReport {
    match entity_report(y_true, y_pred, mode) {
        Ok(report) => report,
        Err(error) => panic!("generated input must be valid: {error}"),
    }
}

fn entity_set(sequences: &[Vec<&str>], mode: EntityMode) -> HashSet<Entity> {
    match extract_entities(sequences, mode) {
        Ok(found) => found.into_iter().collect(),
        Err(error) => panic!("generated input must be valid: {error}"),
    }
}

proptest! {
    #[test]
    fn perfect_entity_predictions_score_one((mode, (y_true, _)) in corpus()) {
        let report = score(&y_true, &y_true, mode);
        for row in &report.types {
            prop_assert!(row.support > 0);
            prop_assert_eq!((row.precision, row.recall, row.f1), (1.0, 1.0, 1.0));
        }
        if !report.types.is_empty() {
            for avg in [report.micro_avg, report.macro_avg, report.weighted_avg] {
                prop_assert_eq!((avg.precision, avg.recall, avg.f1), (1.0, 1.0, 1.0));
            }
            prop_assert!(report.undefined_metrics.is_empty());
        }
        prop_assert_eq!(token_accuracy(&y_true, &y_true), Ok(1.0));
    }

    #[test]
    fn sentence_order_does_not_matter(
        (mode, (y_true, y_pred)) in corpus(),
        seed in any::<u64>(),
    ) {
        // A seeded Fisher-Yates permutation of the sentence indices.
        let mut order: Vec<usize> = (0..y_true.len()).collect();
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        let permuted_true: Vec<Vec<&str>> = order.iter().map(|&i| y_true[i].clone()).collect();
        let permuted_pred: Vec<Vec<&str>> = order.iter().map(|&i| y_pred[i].clone()).collect();
        prop_assert_eq!(
            score(&y_true, &y_pred, mode),
            score(&permuted_true, &permuted_pred, mode)
        );
    }

    #[test]
    fn micro_counts_are_sums_of_type_counts((mode, (y_true, y_pred)) in corpus()) {
        let report = score(&y_true, &y_pred, mode);
        let true_entities = entity_set(&y_true, mode);
        let pred_entities = entity_set(&y_pred, mode);
        let tp: usize = report.types.iter().map(|t| t.true_positives).sum();
        let predicted: usize = report.types.iter().map(|t| t.predicted).sum();
        let support: usize = report.types.iter().map(|t| t.support).sum();
        prop_assert_eq!(tp, true_entities.intersection(&pred_entities).count());
        prop_assert_eq!(predicted, pred_entities.len());
        prop_assert_eq!(support, true_entities.len());
        prop_assert_eq!(report.micro_avg.support, support);
        let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        prop_assert_eq!(report.micro_avg.precision, ratio(tp, predicted));
        prop_assert_eq!(report.micro_avg.recall, ratio(tp, support));
        for row in &report.types {
            let of_type = |set: &HashSet<Entity>| set.iter().filter(|e| e.entity_type == row.entity_type).count();
            prop_assert_eq!(row.support, of_type(&true_entities));
            prop_assert_eq!(row.predicted, of_type(&pred_entities));
        }
    }

    #[test]
    fn perfect_class_predictions_score_one(
        (names, y_true) in (1usize..6).prop_flat_map(|n| (
            Just((0..n).map(|i| format!("class {i}")).collect::<Vec<_>>()),
            prop::collection::vec(0..n, 1..40),
        ))
    ) {
        let report = match classification_report(&y_true, &y_true, &names) {
            Ok(report) => report,
            Err(error) => panic!("{error}"),
        };
        prop_assert_eq!(report.accuracy, 1.0);
        for class in report.classes.iter().filter(|c| c.support > 0) {
            prop_assert_eq!((class.precision, class.recall, class.f1), (1.0, 1.0, 1.0));
        }
        let w = report.weighted_avg;
        prop_assert_eq!((w.precision, w.recall, w.f1), (1.0, 1.0, 1.0));
    }

    #[test]
    fn class_counts_are_consistent(
        (names, pairs) in (1usize..6).prop_flat_map(|n| (
            Just((0..n).map(|i| format!("c{i}")).collect::<Vec<_>>()),
            prop::collection::vec((0..n, 0..n), 1..40),
        ))
    ) {
        let (y_true, y_pred): (Vec<usize>, Vec<usize>) = pairs.into_iter().unzip();
        let report = match classification_report(&y_true, &y_pred, &names) {
            Ok(report) => report,
            Err(error) => panic!("{error}"),
        };
        let total: usize = report.confusion_matrix.counts.iter().flatten().sum();
        prop_assert_eq!(total, y_true.len());
        prop_assert_eq!(report.classes.iter().map(|c| c.support).sum::<usize>(), y_true.len());
        prop_assert_eq!(report.classes.iter().map(|c| c.predicted).sum::<usize>(), y_pred.len());
        let correct: usize = report.classes.iter().map(|c| c.true_positives).sum();
        prop_assert_eq!(report.accuracy, correct as f64 / y_true.len() as f64);
    }
}
