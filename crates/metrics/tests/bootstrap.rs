//! Bootstrap confidence intervals: coverage of the estimate, determinism,
//! shrinking with more data, exact agreement of the estimates and entity counts
//! with the reports, and typed errors.

use metrics::{
    accuracy_interval, bootstrap, classification_report, entity_counts_per_sequence, entity_report, macro_f1_interval,
    micro_f1_interval, BootstrapOptions, ConfidenceInterval, EntityCounts, EntityMode, InputSide, MetricsError, Scheme,
};
use proptest::prelude::*;

const STRICT_IOB2: EntityMode = EntityMode::Strict(Scheme::Iob2);
const MODES: [EntityMode; 3] = [EntityMode::Default, STRICT_IOB2, EntityMode::Strict(Scheme::Iobes)];

fn ok<T>(result: metrics::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("unexpected error: {error}"),
    }
}

/// `n` examples of class 0, the first `correct` of them predicted correctly.
fn binary(n: usize, correct: usize) -> (Vec<usize>, Vec<usize>) {
    let y_true = vec![0; n];
    let y_pred = (0..n).map(|i| usize::from(i >= correct)).collect();
    (y_true, y_pred)
}

fn with_seed(seed: u64) -> BootstrapOptions {
    BootstrapOptions { seed, ..BootstrapOptions::default() }
}

#[test]
fn default_options() {
    let options = BootstrapOptions::default();
    assert_eq!((options.resamples, options.level, options.seed), (1000, 0.95, 0));
    assert_eq!(options.validate(), Ok(()));
}

#[test]
fn interval_contains_estimate_and_is_ordered() {
    let (y_true, y_pred) = binary(100, 80);
    let interval = ok(accuracy_interval(&y_true, &y_pred, &BootstrapOptions::default()));
    assert_eq!(interval.estimate, 0.8);
    assert!(interval.low < 0.8 && 0.8 < interval.high, "{interval}");
    assert_eq!((interval.level, interval.resamples), (0.95, 1000));

    let y_true: Vec<usize> = (0..300).map(|i| i % 3).collect();
    let y_pred: Vec<usize> = (0..300).map(|i| if i % 7 == 0 { (i + 1) % 3 } else { i % 3 }).collect();
    let interval = ok(macro_f1_interval(&y_true, &y_pred, 3, &BootstrapOptions::default()));
    assert!(interval.low < interval.estimate && interval.estimate < interval.high, "{interval}");
}

#[test]
fn accuracy_interval_has_the_binomial_width() {
    // 80% of 10,000: standard error sqrt(0.8 * 0.2 / 10,000) = 0.004, so the
    // 95% interval is about 2 * 1.96 * 0.004 = 0.0157 wide.
    let (y_true, y_pred) = binary(10_000, 8_000);
    let interval = ok(accuracy_interval(&y_true, &y_pred, &BootstrapOptions::default()));
    let expected = 2.0 * 1.959964 * 0.004;
    assert!((interval.width() / expected - 1.0).abs() < 0.15, "{interval}, expected width {expected}");
    assert!(((interval.low + interval.high) / 2.0 - 0.8).abs() < 0.002, "{interval}");
}

#[test]
fn same_seed_same_interval_other_seed_differs() {
    let values: Vec<f64> = (0..50).map(|i| ((i * 37) % 101) as f64 / 101.0).collect();
    let mean = |indices: &[usize]| indices.iter().map(|&i| values[i]).sum::<f64>() / indices.len() as f64;
    let estimate = mean(&(0..values.len()).collect::<Vec<_>>());
    let first = ok(bootstrap(values.len(), estimate, &with_seed(7), mean));
    let again = ok(bootstrap(values.len(), estimate, &with_seed(7), mean));
    let other = ok(bootstrap(values.len(), estimate, &with_seed(8), mean));
    assert_eq!(first, again);
    assert_ne!((first.low, first.high), (other.low, other.high));

    let (y_true, y_pred) = binary(1000, 850);
    let intervals: Vec<ConfidenceInterval> =
        (0..5).map(|seed| ok(accuracy_interval(&y_true, &y_pred, &with_seed(seed)))).collect();
    assert_eq!(intervals[0], ok(accuracy_interval(&y_true, &y_pred, &with_seed(0))));
    assert!(intervals.iter().any(|i| (i.low, i.high) != (intervals[0].low, intervals[0].high)));
}

#[test]
fn interval_shrinks_with_more_data() {
    let (small_true, small_pred) = binary(100, 80);
    let (large_true, large_pred) = binary(10_000, 8_000);
    let small = ok(accuracy_interval(&small_true, &small_pred, &BootstrapOptions::default()));
    let large = ok(accuracy_interval(&large_true, &large_pred, &BootstrapOptions::default()));
    assert_eq!(small.estimate, large.estimate);
    // Theory says a tenth; "well under half" leaves room for resampling noise.
    assert!(large.width() < 0.25 * small.width(), "{small} vs {large}");
    assert!(large.width() > 0.0);
}

#[test]
fn all_correct_gives_a_degenerate_interval() {
    let y: Vec<usize> = (0..300).map(|i| i % 3).collect();
    for interval in [
        ok(accuracy_interval(&y, &y, &BootstrapOptions::default())),
        ok(macro_f1_interval(&y, &y, 3, &BootstrapOptions::default())),
    ] {
        assert_eq!((interval.estimate, interval.low, interval.high), (1.0, 1.0, 1.0));
    }
    // On 7 examples some resamples miss class 0 (2 examples) entirely; scikit-learn
    // scores the absent class 0, so macro F1 drops to 2/3 there although every
    // prediction is right.
    let tiny = vec![0, 1, 2, 1, 0, 2, 2];
    let interval = ok(macro_f1_interval(&tiny, &tiny, 3, &BootstrapOptions::default()));
    assert_eq!((interval.estimate, interval.high), (1.0, 1.0));
    assert_eq!(interval.low, 2.0 / 3.0);
    let tags = vec![vec!["B-PER", "I-PER", "O"], vec!["O", "B-LOC"]];
    let counts = ok(entity_counts_per_sequence(&tags, &tags, STRICT_IOB2));
    let interval = ok(micro_f1_interval(&counts, &BootstrapOptions::default()));
    assert_eq!((interval.estimate, interval.low, interval.high), (1.0, 1.0, 1.0));
}

#[test]
fn statistic_receives_units_indices_drawn_with_replacement() {
    let mut calls = 0;
    let mut seen = [0usize; 5];
    let interval = ok(bootstrap(5, 0.0, &BootstrapOptions { resamples: 200, ..Default::default() }, |indices| {
        calls += 1;
        assert_eq!(indices.len(), 5);
        for &i in indices {
            seen[i] += 1;
        }
        0.0
    }));
    assert_eq!(calls, 200);
    assert_eq!(seen.iter().sum::<usize>(), 1000);
    // Each unit should get about 200 draws.
    assert!(seen.iter().all(|&n| (120..280).contains(&n)), "{seen:?}");
    assert_eq!((interval.low, interval.high, interval.resamples), (0.0, 0.0, 200));
}

#[test]
fn bounds_are_linear_percentiles_of_the_resampled_values() {
    // Record the statistics, then recompute numpy's linear percentiles by hand.
    let options = BootstrapOptions { resamples: 11, level: 0.8, seed: 3 };
    let mut recorded = Vec::new();
    let interval = ok(bootstrap(30, 0.5, &options, |indices| {
        let value = indices.iter().sum::<usize>() as f64;
        recorded.push(value);
        value
    }));
    recorded.sort_by(f64::total_cmp);
    // q = 0.1 and 0.9 of 11 values: positions 1.0 and 9.0 (up to rounding of 1 - 0.8).
    let (low_position, high_position) = (0.1 * 10.0, 0.9 * 10.0);
    let interpolate = |position: f64| {
        let below = position.floor() as usize;
        let fraction = position - below as f64;
        recorded[below] + fraction * (recorded[(below + 1).min(10)] - recorded[below])
    };
    assert!((interval.low - interpolate(low_position)).abs() < 1e-9 * recorded[10]);
    assert!((interval.high - interpolate(high_position)).abs() < 1e-9 * recorded[10]);
    assert_eq!(interval.estimate, 0.5);
}

#[test]
fn macro_f1_estimate_equals_the_classification_report() {
    let y_true = vec![0, 1, 2, 2, 2, 1, 0, 0, 1, 2, 2];
    let y_pred = vec![0, 0, 2, 2, 1, 1, 0, 2, 1, 2, 0];
    // Class 3 never occurs: it scores 0 and lowers the mean, as in scikit-learn.
    for num_classes in [3, 4] {
        let names: Vec<String> = (0..num_classes).map(|i| format!("class {i}")).collect();
        let report = ok(classification_report(&y_true, &y_pred, &names));
        let interval = ok(macro_f1_interval(&y_true, &y_pred, num_classes, &BootstrapOptions::default()));
        assert_eq!(interval.estimate, report.macro_avg.f1, "{num_classes} classes");
        assert!(interval.low <= interval.estimate && interval.estimate <= interval.high, "{interval}");
    }
    let accuracy = ok(accuracy_interval(&y_true, &y_pred, &BootstrapOptions::default()));
    assert_eq!(accuracy.estimate, ok(classification_report(&y_true, &y_pred, &["a", "b", "c"])).accuracy);
}

/// Summed counts agree with the report's micro average, bit for bit.
fn assert_counts_match_report<T: AsRef<[&'static str]>>(y_true: &[T], y_pred: &[T], mode: EntityMode) {
    let report = ok(entity_report(y_true, y_pred, mode));
    let counts = ok(entity_counts_per_sequence(y_true, y_pred, mode));
    assert_eq!(counts.len(), y_true.len());
    let total: EntityCounts = counts.iter().copied().sum();
    assert_eq!(total.true_positives, report.types.iter().map(|t| t.true_positives).sum::<usize>(), "{mode}");
    assert_eq!(total.predicted, report.types.iter().map(|t| t.predicted).sum::<usize>(), "{mode}");
    assert_eq!(total.gold, report.micro_avg.support, "{mode}");
    let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let (precision, recall) = (ratio(total.true_positives, total.predicted), ratio(total.true_positives, total.gold));
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    assert_eq!((precision, recall, f1), (report.micro_avg.precision, report.micro_avg.recall, report.micro_avg.f1));
    assert_eq!((total.precision(), total.recall(), total.f1()), (precision, recall, f1));
    let options = BootstrapOptions { resamples: 20, ..Default::default() };
    assert_eq!(ok(micro_f1_interval(&counts, &options)).estimate, report.micro_avg.f1, "{mode}");
}

#[test]
fn entity_counts_per_sentence_by_hand() {
    let y_true = vec![vec!["B-PER", "I-PER", "O", "B-LOC"], vec![], vec!["O", "B-ORG"], vec!["I-PER", "I-PER"]];
    let y_pred = vec![vec!["B-PER", "I-PER", "O", "I-LOC"], vec![], vec!["O", "O"], vec!["B-PER", "I-PER"]];
    let counts = |tp, predicted, gold| EntityCounts { true_positives: tp, predicted, gold };
    // Strict IOB2: the stray I-LOC and the I-PER I-PER run are no entities.
    assert_eq!(
        ok(entity_counts_per_sequence(&y_true, &y_pred, STRICT_IOB2)),
        vec![counts(1, 1, 2), counts(0, 0, 0), counts(0, 0, 1), counts(0, 1, 0)]
    );
    // Default (conlleval): a leading I- starts an entity.
    assert_eq!(
        ok(entity_counts_per_sequence(&y_true, &y_pred, EntityMode::Default)),
        vec![counts(2, 2, 2), counts(0, 0, 0), counts(0, 0, 1), counts(1, 1, 1)]
    );
    for mode in [EntityMode::Default, STRICT_IOB2] {
        assert_counts_match_report(&y_true, &y_pred, mode);
    }
}

#[test]
fn entity_counts_reproduce_the_micro_average_on_corner_cases() {
    let cases: Vec<Corpus> = vec![
        // Type change inside an entity, and a stray I- after O.
        (
            vec![vec!["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"]],
            vec![vec!["B-PER", "I-LOC", "I-PER", "O", "O", "I-LOC"]],
        ),
        // Adjacent entities of one type, partial overlaps, untyped tags.
        (
            vec![vec!["B-ORG", "B-ORG", "I-ORG", "O"], vec!["B", "I", "O", "B-PER"]],
            vec![vec!["B-ORG", "I-ORG", "I-ORG", "O"], vec!["B", "I", "O", "B-PER"]],
        ),
        // Nothing predicted; nothing true; no entity at all.
        (vec![vec!["B-PER", "O"], vec!["O", "O"]], vec![vec!["O", "O"], vec!["B-LOC", "I-LOC"]]),
        (vec![vec!["O", "O"], vec!["O"]], vec![vec!["O", "O"], vec!["O"]]),
    ];
    for (y_true, y_pred) in &cases {
        for mode in [EntityMode::Default, STRICT_IOB2] {
            assert_counts_match_report(y_true, y_pred, mode);
        }
    }
    let (y_true, y_pred) = &cases[3];
    let counts = ok(entity_counts_per_sequence(y_true, y_pred, STRICT_IOB2));
    let interval = ok(micro_f1_interval(&counts, &BootstrapOptions::default()));
    assert_eq!((interval.estimate, interval.low, interval.high), (0.0, 0.0, 0.0));
}

#[test]
fn micro_f1_interval_over_sentences() {
    let mut y_true = Vec::new();
    let mut y_pred = Vec::new();
    for i in 0..60 {
        y_true.push(vec!["B-PER", "I-PER", "O", "B-LOC"]);
        y_pred.push(match i % 4 {
            0 => vec!["B-PER", "O", "O", "B-LOC"],
            1 => vec!["B-PER", "I-PER", "O", "O"],
            _ => vec!["B-PER", "I-PER", "O", "B-LOC"],
        });
    }
    let report = ok(entity_report(&y_true, &y_pred, STRICT_IOB2));
    let counts = ok(entity_counts_per_sequence(&y_true, &y_pred, STRICT_IOB2));
    let interval = ok(micro_f1_interval(&counts, &BootstrapOptions::default()));
    assert_eq!(interval.estimate, report.micro_avg.f1);
    assert!(interval.low < interval.estimate && interval.estimate < interval.high, "{interval}");
    assert!(interval.high <= 1.0);
}

#[test]
fn display_and_serde() {
    let interval = ConfidenceInterval { estimate: 0.81234, low: 0.789, high: 0.835, level: 0.95, resamples: 1000 };
    assert_eq!(interval.to_string(), "0.8123 [0.7890, 0.8350]");
    assert_eq!(format!("{interval:.2}"), "0.81 [0.79, 0.83]");
    let json = match serde_json::to_string(&interval) {
        Ok(json) => json,
        Err(error) => panic!("{error}"),
    };
    let back: ConfidenceInterval = match serde_json::from_str(&json) {
        Ok(back) => back,
        Err(error) => panic!("{error}: {json}"),
    };
    assert_eq!(back, interval);
}

#[test]
fn errors() {
    let defaults = BootstrapOptions::default();
    assert_eq!(bootstrap(0, 0.5, &defaults, |_| 0.5), Err(MetricsError::EmptyInput));
    assert_eq!(micro_f1_interval(&[], &defaults), Err(MetricsError::EmptyInput));
    assert_eq!(accuracy_interval(&[], &[], &defaults), Err(MetricsError::EmptyInput));
    assert_eq!(macro_f1_interval(&[], &[], 2, &defaults), Err(MetricsError::EmptyInput));

    let zero = BootstrapOptions { resamples: 0, ..defaults };
    assert_eq!(
        bootstrap(3, 0.5, &zero, |_| 0.5),
        Err(MetricsError::InvalidBootstrapOption { field: "resamples", value: "0".to_owned(), expected: "at least 1" })
    );
    for level in [1.5, 1.0, 0.0, -0.1, f64::NAN] {
        let options = BootstrapOptions { level, ..defaults };
        let error = match options.validate() {
            Err(error @ MetricsError::InvalidBootstrapOption { field: "level", .. }) => error,
            other => panic!("level {level}: {other:?}"),
        };
        assert_eq!(accuracy_interval(&[0], &[0], &options), Err(error));
    }
    let message = BootstrapOptions { level: 1.5, ..defaults }.validate().map_err(|e| e.to_string());
    assert_eq!(message, Err("invalid bootstrap option level = 1.5: expected strictly between 0 and 1".to_owned()));

    assert_eq!(accuracy_interval(&[0, 1], &[0], &defaults), Err(MetricsError::LengthMismatch { y_true: 2, y_pred: 1 }));
    assert_eq!(
        macro_f1_interval(&[0, 1], &[0], 2, &defaults),
        Err(MetricsError::LengthMismatch { y_true: 2, y_pred: 1 })
    );
    assert_eq!(
        macro_f1_interval(&[0, 1], &[0, 2], 2, &defaults),
        Err(MetricsError::ClassIndexOutOfRange { side: InputSide::YPred, position: 1, index: 2, num_classes: 2 })
    );
    let one = vec![vec!["O"]];
    let two = vec![vec!["O"], vec!["O"]];
    assert_eq!(
        entity_counts_per_sequence(&one, &two, STRICT_IOB2),
        Err(MetricsError::LengthMismatch { y_true: 1, y_pred: 2 })
    );
    assert_eq!(
        entity_counts_per_sequence(&[vec!["O", "O"]], &[vec!["O"]], STRICT_IOB2),
        Err(MetricsError::SentenceLengthMismatch { sentence: 0, y_true: 2, y_pred: 1 })
    );
    // Invalid tags give exactly entity_report's error.
    let (y_true, y_pred) = (vec![vec!["O"], vec!["S-PER"]], vec![vec!["X"], vec!["O"]]);
    for mode in MODES {
        assert!(entity_report(&y_true, &y_pred, mode).is_err(), "{mode}");
        assert_eq!(
            entity_counts_per_sequence(&y_true, &y_pred, mode).map(|_| ()),
            entity_report(&y_true, &y_pred, mode).map(|_| ())
        );
    }

    assert_eq!(bootstrap(3, f64::NAN, &defaults, |_| 0.5), Err(MetricsError::NonFiniteEstimate));
    let mut calls = 0;
    let result = bootstrap(3, 0.5, &defaults, |_| {
        calls += 1;
        if calls == 4 {
            f64::INFINITY
        } else {
            0.5
        }
    });
    assert_eq!(result, Err(MetricsError::NonFiniteStatistic { resample: 3 }));
}

const IOB2_TAGS: &[&str] = &["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B", "I"];
const IOBES_TAGS: &[&str] = &["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "S", "E"];

type Corpus = (Vec<Vec<&'static str>>, Vec<Vec<&'static str>>);

/// A mode, and sentences (possibly empty) of (true, predicted) tags valid in that mode.
fn corpus() -> impl Strategy<Value = (EntityMode, Corpus)> {
    let modes = prop_oneof![
        Just((STRICT_IOB2, IOB2_TAGS)),
        Just((EntityMode::Strict(Scheme::Iobes), IOBES_TAGS)),
        Just((EntityMode::Default, IOBES_TAGS)),
        Just((EntityMode::Default, IOB2_TAGS)),
    ];
    modes.prop_flat_map(|(mode, tags)| {
        let tag = prop::sample::select(tags);
        let sentence = prop::collection::vec((tag.clone(), tag), 0..10);
        prop::collection::vec(sentence, 1..8)
            .prop_filter("at least one token", |sentences| sentences.iter().any(|s| !s.is_empty()))
            .prop_map(move |sentences| {
                let y_true = sentences.iter().map(|s| s.iter().map(|(t, _)| *t).collect()).collect();
                let y_pred = sentences.iter().map(|s| s.iter().map(|(_, p)| *p).collect()).collect();
                (mode, (y_true, y_pred))
            })
    })
}

proptest! {
    #[test]
    fn summed_entity_counts_reproduce_the_micro_average((mode, (y_true, y_pred)) in corpus()) {
        assert_counts_match_report(&y_true, &y_pred, mode);
    }

    #[test]
    fn macro_f1_estimate_is_the_report_macro_f1(
        (num_classes, pairs) in (1usize..6).prop_flat_map(|n| (Just(n), prop::collection::vec((0..n, 0..n), 1..40)))
    ) {
        let (y_true, y_pred): (Vec<usize>, Vec<usize>) = pairs.into_iter().unzip();
        let names: Vec<String> = (0..num_classes).map(|i| format!("c{i}")).collect();
        let report = ok(classification_report(&y_true, &y_pred, &names));
        let options = BootstrapOptions { resamples: 20, ..Default::default() };
        let interval = ok(macro_f1_interval(&y_true, &y_pred, num_classes, &options));
        prop_assert_eq!(interval.estimate, report.macro_avg.f1);
        prop_assert!(interval.low <= interval.high);
        prop_assert!(interval.low >= 0.0 && interval.high <= 1.0);
    }
}
