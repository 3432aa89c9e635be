//! Every case of `fixtures/reference.json` (written by scikit-learn and
//! seqeval through `fixtures/make_reference.py`) must be reproduced exactly:
//! numbers to 1e-12, report text byte for byte, errors at the same tag.

use metrics::{
    accuracy, classification_report, confusion_matrix, entity_report, extract_entities, token_accuracy, AverageScores,
    EntityMode, InputSide, MetricsError, Scheme,
};
use serde::Deserialize;

const FIXTURE: &str = include_str!("fixtures/reference.json");
const TOLERANCE: f64 = 1e-12;

#[derive(Deserialize)]
struct Fixture {
    classification: Vec<ClassificationCase>,
    entities: Vec<EntityCase>,
}

#[derive(Deserialize)]
struct Scores {
    precision: f64,
    recall: f64,
    f1: f64,
    support: usize,
}

#[derive(Deserialize)]
struct ClassificationCase {
    names: Vec<String>,
    y_true: Vec<usize>,
    y_pred: Vec<usize>,
    digits: usize,
    accuracy: f64,
    report_accuracy: f64,
    per_class: Vec<Scores>,
    #[serde(rename = "macro")]
    macro_avg: Scores,
    weighted: Scores,
    confusion_matrix: Vec<Vec<usize>>,
    text: String,
}

#[derive(Deserialize)]
struct TypeRow {
    name: String,
    precision: f64,
    recall: f64,
    f1: f64,
    support: usize,
}

#[derive(Deserialize)]
struct ExpectedError {
    side: String,
    sentence: usize,
    token: usize,
    tag: String,
}

#[derive(Deserialize)]
struct EntityCase {
    mode: String,
    scheme: Option<String>,
    y_true: Vec<Vec<String>>,
    y_pred: Vec<Vec<String>>,
    digits: usize,
    error: Option<ExpectedError>,
    types: Option<Vec<TypeRow>>,
    micro: Option<Scores>,
    #[serde(rename = "macro")]
    macro_avg: Option<Scores>,
    weighted: Option<Scores>,
    text: Option<String>,
    token_accuracy: Option<f64>,
    entities_true: Option<Vec<(usize, String, usize, usize)>>,
    entities_pred: Option<Vec<(usize, String, usize, usize)>>,
}

fn fixture() -> Fixture {
    match serde_json::from_str(FIXTURE) {
        Ok(fixture) => fixture,
        Err(error) => panic!("fixtures/reference.json does not parse: {error}"),
    }
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() <= TOLERANCE, "{what}: got {actual:?}, reference {expected:?}");
}

fn check_scores(actual: &AverageScores, expected: &Scores, what: &str) {
    close(actual.precision, expected.precision, &format!("{what} precision"));
    close(actual.recall, expected.recall, &format!("{what} recall"));
    close(actual.f1, expected.f1, &format!("{what} f1"));
    assert_eq!(actual.support, expected.support, "{what} support");
}

#[test]
fn fixture_has_a_few_hundred_cases_of_every_kind() {
    let fixture = fixture();
    assert!(fixture.classification.len() >= 100);
    assert!(fixture.entities.len() >= 200);
    let count = |mode: &str, scheme: Option<&str>| {
        fixture.entities.iter().filter(|c| c.mode == mode && c.scheme.as_deref() == scheme).count()
    };
    assert!(count("default", None) >= 20);
    assert!(count("strict", Some("IOB2")) >= 20);
    assert!(count("strict", Some("IOBES")) >= 20);
    assert!(fixture.entities.iter().filter(|c| c.error.is_some()).count() >= 10);
}

#[test]
fn classification_matches_scikit_learn() {
    for (i, case) in fixture().classification.iter().enumerate() {
        let report = match classification_report(&case.y_true, &case.y_pred, &case.names) {
            Ok(report) => report,
            Err(error) => panic!("classification case {i}: {error}"),
        };
        assert_eq!(report.to_text(case.digits), case.text, "classification case {i}: report text");
        close(report.accuracy, case.report_accuracy, &format!("case {i} accuracy"));
        assert_eq!(
            accuracy(&case.y_true, &case.y_pred),
            Ok(report.accuracy),
            "case {i}: accuracy() agrees with the report"
        );
        close(report.accuracy, case.accuracy, &format!("case {i} accuracy_score"));
        assert_eq!(report.classes.len(), case.per_class.len(), "case {i}");
        for (row, expected) in report.classes.iter().zip(&case.per_class) {
            let what = format!("case {i} class {}", row.name);
            close(row.precision, expected.precision, &format!("{what} precision"));
            close(row.recall, expected.recall, &format!("{what} recall"));
            close(row.f1, expected.f1, &format!("{what} f1"));
            assert_eq!(row.support, expected.support, "{what} support");
        }
        check_scores(&report.macro_avg, &case.macro_avg, &format!("case {i} macro"));
        check_scores(&report.weighted_avg, &case.weighted, &format!("case {i} weighted"));
        assert_eq!(report.confusion_matrix.counts, case.confusion_matrix, "case {i} confusion matrix");
        assert_eq!(
            confusion_matrix(&case.y_true, &case.y_pred, case.names.len()),
            Ok(report.confusion_matrix.clone()),
            "case {i}"
        );
    }
}

fn mode_of(case: &EntityCase) -> EntityMode {
    let scheme = match case.scheme.as_deref() {
        None => return EntityMode::Default,
        Some("IOB1") => Scheme::Iob1,
        Some("IOE1") => Scheme::Ioe1,
        Some("IOB2") => Scheme::Iob2,
        Some("IOE2") => Scheme::Ioe2,
        Some("IOBES") => Scheme::Iobes,
        Some("BILOU") => Scheme::Bilou,
        Some(other) => panic!("unknown scheme {other}"),
    };
    assert_eq!(case.mode, "strict");
    EntityMode::Strict(scheme)
}

fn entity_tuples(sequences: &[Vec<String>], mode: EntityMode) -> Vec<(usize, String, usize, usize)> {
    match extract_entities(sequences, mode) {
        Ok(entities) => entities.into_iter().map(|e| (e.sentence, e.entity_type, e.start, e.end)).collect(),
        Err(error) => panic!("extract_entities: {error}"),
    }
}

#[test]
fn entities_match_seqeval() {
    let mut scored = 0;
    for (i, case) in fixture().entities.iter().enumerate() {
        let mode = mode_of(case);
        let result = entity_report(&case.y_true, &case.y_pred, mode);
        if let Some(expected) = &case.error {
            let side = match expected.side.as_str() {
                "y_true" => InputSide::YTrue,
                _ => InputSide::YPred,
            };
            match result {
                Err(MetricsError::InvalidTag { side: s, sentence, token, tag, .. }) => {
                    assert_eq!(
                        (s, sentence, token, tag.as_str()),
                        (side, expected.sentence, expected.token, expected.tag.as_str()),
                        "entity case {i} ({mode}): error location"
                    );
                }
                other => panic!("entity case {i} ({mode}): expected an invalid tag, got {other:?}"),
            }
            continue;
        }
        let report = match result {
            Ok(report) => report,
            Err(error) => panic!("entity case {i} ({mode}): {error}"),
        };
        let (Some(types), Some(micro), Some(macro_avg), Some(weighted), Some(text)) =
            (&case.types, &case.micro, &case.macro_avg, &case.weighted, &case.text)
        else {
            panic!("entity case {i}: incomplete reference");
        };
        assert_eq!(&report.to_text(case.digits), text, "entity case {i} ({mode}): report text");
        let names: Vec<&str> = report.types.iter().map(|t| t.entity_type.as_str()).collect();
        let expected_names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, expected_names, "entity case {i}: types and their order");
        for (row, expected) in report.types.iter().zip(types) {
            let what = format!("entity case {i} type {}", row.entity_type);
            close(row.precision, expected.precision, &format!("{what} precision"));
            close(row.recall, expected.recall, &format!("{what} recall"));
            close(row.f1, expected.f1, &format!("{what} f1"));
            assert_eq!(row.support, expected.support, "{what} support");
        }
        check_scores(&report.micro_avg, micro, &format!("entity case {i} micro"));
        check_scores(&report.macro_avg, macro_avg, &format!("entity case {i} macro"));
        check_scores(&report.weighted_avg, weighted, &format!("entity case {i} weighted"));

        let accuracy = token_accuracy(&case.y_true, &case.y_pred);
        match (accuracy, case.token_accuracy) {
            (Ok(actual), Some(expected)) => close(actual, expected, "token accuracy"),
            (other, expected) => {
                panic!("entity case {i}: token accuracy {other:?} vs {expected:?}")
            }
        }
        assert_eq!(
            Some(entity_tuples(&case.y_true, mode)),
            case.entities_true,
            "entity case {i} ({mode}): entities of y_true"
        );
        assert_eq!(
            Some(entity_tuples(&case.y_pred, mode)),
            case.entities_pred,
            "entity case {i} ({mode}): entities of y_pred"
        );
        scored += 1;
    }
    assert!(scored >= 150, "only {scored} scored cases");
}
