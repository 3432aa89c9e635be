//! scikit-learn's documented `classification_report` example and edge cases
//! (absent classes, a single class present, no correct prediction), with the
//! exact text scikit-learn 1.9 prints.

use metrics::{
    accuracy, classification_report, confusion_matrix, ClassificationReport, Metric, UndefinedMetric, UndefinedReason,
};

fn report<S: AsRef<str>>(y_true: &[usize], y_pred: &[usize], names: &[S]) -> ClassificationReport {
    match classification_report(y_true, y_pred, names) {
        Ok(report) => report,
        Err(error) => panic!("{error}"),
    }
}

fn undefined(label: &str, metric: Metric, reason: UndefinedReason) -> UndefinedMetric {
    UndefinedMetric { label: label.to_owned(), metric, reason }
}

#[test]
fn documented_example() {
    let r = report(&[0, 1, 2, 2, 2], &[0, 0, 2, 2, 1], &["class 0", "class 1", "class 2"]);
    let expected = "              precision    recall  f1-score   support

     class 0       0.50      1.00      0.67         1
     class 1       0.00      0.00      0.00         1
     class 2       1.00      0.67      0.80         3

    accuracy                           0.60         5
   macro avg       0.50      0.56      0.49         5
weighted avg       0.70      0.60      0.61         5
";
    assert_eq!(r.to_string(), expected);
    // output_dict=True values, exactly.
    let rows: Vec<(f64, f64, f64, usize)> =
        r.classes.iter().map(|c| (c.precision, c.recall, c.f1, c.support)).collect();
    assert_eq!(rows, vec![(0.5, 1.0, 0.6666666666666666, 1), (0.0, 0.0, 0.0, 1), (1.0, 0.6666666666666666, 0.8, 3),]);
    assert_eq!(r.accuracy, 0.6);
    let m = r.macro_avg;
    assert_eq!((m.precision, m.recall, m.f1, m.support), (0.5, 0.5555555555555555, 0.48888888888888893, 5));
    let w = r.weighted_avg;
    assert_eq!((w.precision, w.recall, w.f1, w.support), (0.7, 0.6, 0.6133333333333334, 5));
    assert_eq!(r.confusion_matrix.counts, vec![vec![1, 0, 0], vec![1, 0, 0], vec![0, 1, 2]]);
    assert!(r.undefined_metrics.is_empty());
}

#[test]
fn digits_change_the_text() {
    let r = report(&[0, 1, 2, 2, 2], &[0, 0, 2, 2, 1], &["a", "b", "c"]);
    let text = r.to_text(4);
    assert!(text.contains("           a     0.5000    1.0000    0.6667         1\n"));
    assert!(text.contains("    accuracy                         0.6000         5\n"));
}

#[test]
fn single_class_present_with_absent_classes() {
    let names = ["cat", "dog", "a bird with a long name"];
    let r = report(&[1, 1, 1], &[1, 1, 1], &names);
    let expected = "                         precision    recall  f1-score   support

                    cat       0.00      0.00      0.00         0
                    dog       1.00      1.00      1.00         3
a bird with a long name       0.00      0.00      0.00         0

               accuracy                           1.00         3
              macro avg       0.33      0.33      0.33         3
           weighted avg       1.00      1.00      1.00         3
";
    assert_eq!(r.to_string(), expected);
    assert_eq!(
        r.undefined_metrics,
        vec![
            undefined("cat", Metric::Precision, UndefinedReason::NoPredictedSamples),
            undefined("cat", Metric::Recall, UndefinedReason::NoTrueSamples),
            undefined("cat", Metric::FScore, UndefinedReason::NoTrueNorPredictedSamples),
            undefined("a bird with a long name", Metric::Precision, UndefinedReason::NoPredictedSamples),
            undefined("a bird with a long name", Metric::Recall, UndefinedReason::NoTrueSamples),
            undefined("a bird with a long name", Metric::FScore, UndefinedReason::NoTrueNorPredictedSamples),
        ]
    );
}

#[test]
fn no_correct_prediction_prints_float_supports_like_scikit_learn() {
    let r = report(&[0, 0], &[1, 1], &["yes", "no"]);
    let expected = "              precision    recall  f1-score   support

         yes      0.000     0.000     0.000       2.0
          no      0.000     0.000     0.000       0.0

    accuracy                          0.000       2.0
   macro avg      0.000     0.000     0.000       2.0
weighted avg      0.000     0.000     0.000       2.0
";
    assert_eq!(r.to_text(3), expected);
    assert_eq!(r.accuracy, 0.0);
    assert_eq!(
        r.undefined_metrics,
        vec![
            undefined("yes", Metric::Precision, UndefinedReason::NoPredictedSamples),
            undefined("no", Metric::Recall, UndefinedReason::NoTrueSamples),
        ]
    );
}

#[test]
fn names_come_from_the_caller_and_may_be_owned_strings() {
    let names: Vec<String> = vec!["négatif".to_owned(), "positif".to_owned()];
    let r = report(&[0, 1], &[0, 1], &names);
    assert!(r.to_string().contains("     négatif       1.00      1.00      1.00         1\n"));
}

#[test]
fn accuracy_and_confusion_matrix() {
    assert_eq!(accuracy(&[0, 1, 2, 3], &[0, 2, 1, 3]), Ok(0.5));
    assert_eq!(accuracy(&["a", "b"], &["a", "a"]), Ok(0.5));
    let matrix = match confusion_matrix(&[2, 0, 2, 2, 0, 1], &[0, 0, 2, 2, 0, 2], 3) {
        Ok(matrix) => matrix,
        Err(error) => panic!("{error}"),
    };
    // scikit-learn's documented confusion_matrix example.
    assert_eq!(matrix.counts, vec![vec![2, 0, 0], vec![0, 0, 1], vec![1, 0, 2]]);
    assert_eq!(matrix.num_classes(), 3);
    assert_eq!(matrix.get(2, 0), Some(1));
    assert_eq!(matrix.get(3, 0), None);
}

#[test]
fn report_serializes_to_json() {
    let r = report(&[0, 1, 1], &[0, 1, 0], &["x", "y"]);
    let json = match serde_json::to_value(&r) {
        Ok(json) => json,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(json["classes"][1]["name"], "y");
    assert_eq!(json["classes"][1]["recall"], 0.5);
    assert_eq!(json["accuracy"], r.accuracy);
    assert_eq!(json["macro_avg"]["support"], 3);
    assert_eq!(json["confusion_matrix"]["counts"][1][0], 1);
}
