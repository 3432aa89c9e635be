//! Loading: every input format, forward-fill, drops and their counts, and errors.

mod common;

use common::{write, write_gz, write_xlsx};
use datasets::{
    load_classification, load_ner, ClassificationOptions, DatasetError, DropReason, FileFormat, LabelSpec, NerLabels,
    NerOptions, TextEncoding,
};

/// A review CSV with quotes, an embedded newline, U+0085 (NEL), a missing label, an unknown
/// label and HTML.
const REVIEWS_CSV: &str = "review,sentiment\n\
\"He said \"\"wow\"\".<br /><br />Great!\",positive\n\
\"Two\nlines\u{85}and NEL\",negative\n\
No label here,\n\
,positive\n\
Meh,neutral\n\
\"Bad &amp; boring\",negative\n";

fn reviews_rows() -> Vec<Vec<Option<&'static str>>> {
    vec![
        vec![Some("review"), Some("sentiment")],
        vec![Some("He said \"wow\".<br /><br />Great!"), Some("positive")],
        vec![Some("Two\nlines\u{85}and NEL"), Some("negative")],
        vec![Some("No label here"), None],
        vec![None, Some("positive")],
        vec![Some("Meh"), Some("neutral")],
        vec![Some("Bad &amp; boring"), Some("negative")],
    ]
}

fn check_reviews(data: &datasets::ClassificationData) {
    let got: Vec<(&str, u32)> = data.examples.iter().map(|e| (e.text.as_str(), e.label)).collect();
    assert_eq!(got, [("He said wow.Great!", 1), ("Two lines and NEL", 0), ("Bad boring", 0)]);
    assert_eq!(data.rows_read, 6);
    assert_eq!(data.dropped.total(), 3);
    assert_eq!(data.dropped.count(&DropReason::Missing("sentiment".into())), 1);
    assert_eq!(data.dropped.count(&DropReason::Missing("review".into())), 1);
    assert_eq!(data.dropped.count(&DropReason::UnknownLabel), 1);
    assert_eq!(
        data.dropped.to_string(),
        "dropped 3 rows: 1 missing review, 1 missing sentiment, 1 unknown label (neutral: 1)"
    );
    assert_eq!(data.label_names, ["negative", "positive"]);
    assert_eq!(data.class_counts(), [2, 1]);
}

#[test]
fn classification_csv_csv_gz_and_xlsx_agree() {
    let dir = tempfile::tempdir().unwrap();
    let options = ClassificationOptions::notebook();
    let csv = write(dir.path(), "r.csv", REVIEWS_CSV.as_bytes());
    let gz = write_gz(dir.path(), "r.csv.gz", REVIEWS_CSV.as_bytes());
    let xlsx = write_xlsx(dir.path(), "r.xlsx", "Sheet1", &reviews_rows());
    for path in [&csv, &gz, &xlsx] {
        let data = load_classification(path, &options).unwrap();
        check_reviews(&data);
    }
    // Source rows are spreadsheet rows (header = 1).
    let data = load_classification(&xlsx, &options).unwrap();
    assert_eq!(data.examples.iter().map(|e| e.row).collect::<Vec<_>>(), [2, 3, 7]);
}

#[test]
fn rotten_tomatoes_layout_drops_and_counts_plot_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "category,text,movie_name,has_plot_and_reviews\n\
fresh,A delight.,M1,True\n\
plot,A man walks in.,M1,True\n\
rotten,\"A mess, sadly.\",M2,True\n\
plot,Another plot.,M2,True\n";
    let path = write(dir.path(), "rt.csv", csv.as_bytes());
    let data = load_classification(&path, &ClassificationOptions::rotten_tomatoes()).unwrap();
    let got: Vec<(&str, u32)> = data.examples.iter().map(|e| (e.text.as_str(), e.label)).collect();
    assert_eq!(got, [("A delight.", 1), ("A mess, sadly.", 0)]);
    assert_eq!(data.label_names, ["negative", "positive"]);
    assert_eq!(data.dropped.to_string(), "dropped 2 rows: 2 unknown label (plot: 2)");
}

#[test]
fn configurable_columns_and_label_list() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,body,stars\n1,<b>one</b>,low\n2,two,mid\n3,three,high\n";
    let path = write(dir.path(), "s.csv", csv.as_bytes());
    let options = ClassificationOptions {
        text_column: Some("body".into()),
        label_column: Some("stars".into()),
        labels: Some(LabelSpec::new(&["low", "mid", "high"]).unwrap()),
        clean: false,
        ..ClassificationOptions::default()
    };
    let data = load_classification(&path, &options).unwrap();
    let got: Vec<(&str, u32)> = data.examples.iter().map(|e| (e.text.as_str(), e.label)).collect();
    assert_eq!(got, [("<b>one</b>", 0), ("two", 1), ("three", 2)]);
    assert!(data.dropped.is_empty());
    assert!(LabelSpec::new(&["a", "a"]).is_err());
    assert!(LabelSpec::with_names(&["a", "b"], &["x"]).is_err());
}

#[test]
fn missing_columns_error_lists_the_columns_found() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "m.csv", b"text,label\nx,positive\n");
    let err = load_classification(&csv, &ClassificationOptions::notebook()).unwrap_err();
    match &err {
        DatasetError::MissingColumns { missing, found, location } => {
            assert_eq!(missing, &["review", "sentiment"]);
            assert_eq!(found, &["text", "label"]);
            assert_eq!(location.path, csv);
        }
        other => panic!("unexpected {other:?}"),
    }
    let rows = vec![vec![Some("Sentence #"), Some("Words"), Some("Tag")]];
    let xlsx = write_xlsx(dir.path(), "m.xlsx", "Data", &rows);
    let err = load_ner(&xlsx, &NerOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("sheet \"Data\""), "{message}");
    assert!(message.contains("[\"Word\"]"), "{message}");
    assert!(message.contains("[\"Sentence #\", \"Words\", \"Tag\"]"), "{message}");
}

#[test]
fn empty_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty_xlsx = write_xlsx(dir.path(), "e.xlsx", "Sheet1", &[]);
    let err = load_classification(&empty_xlsx, &ClassificationOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::EmptyFile(ref l) if l.sheet.as_deref() == Some("Sheet1")), "{err:?}");
    let empty_csv = write(dir.path(), "e.csv", b"");
    let err = load_classification(&empty_csv, &ClassificationOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::EmptyFile(_)), "{err:?}");
    // A header and no rows is not an error: zero examples.
    let header_only = write(dir.path(), "h.csv", b"review,sentiment\n");
    let data = load_classification(&header_only, &ClassificationOptions::default()).unwrap();
    assert!(data.examples.is_empty());
}

#[test]
fn truncated_or_garbage_xlsx_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_xlsx(dir.path(), "g.xlsx", "Sheet1", &reviews_rows());
    let bytes = std::fs::read(&good).unwrap();
    for cut in [0, 10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 30, bytes.len() - 1] {
        let path = write(dir.path(), "t.xlsx", &bytes[..cut]);
        let err = load_classification(&path, &ClassificationOptions::default()).unwrap_err();
        assert!(matches!(err, DatasetError::Xlsx { .. }), "cut {cut}: {err:?}");
        assert!(err.to_string().contains("t.xlsx"));
    }
    let garbage = write(dir.path(), "x.xlsx", b"this is not a zip file at all");
    assert!(load_ner(&garbage, &NerOptions::default()).is_err());
    let missing = dir.path().join("nope.xlsx");
    assert!(matches!(load_ner(&missing, &NerOptions::default()).unwrap_err(), DatasetError::Io { .. }));
}

#[test]
fn wrong_cell_type_names_file_sheet_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Reviews").unwrap();
    sheet.write_string(0, 0, "review").unwrap();
    sheet.write_string(0, 1, "sentiment").unwrap();
    sheet.write_string(1, 0, "fine").unwrap();
    sheet.write_string(1, 1, "positive").unwrap();
    let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2020, 1, 2).unwrap();
    let format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    sheet.write_datetime_with_format(2, 0, &date, &format).unwrap();
    sheet.write_string(2, 1, "negative").unwrap();
    // Numbers are text-like: a number in the text column is kept as its digits.
    sheet.write_number(3, 0, 2010.0).unwrap();
    sheet.write_string(3, 1, "negative").unwrap();
    workbook.save(&path).unwrap();
    let err = load_classification(&path, &ClassificationOptions::default()).unwrap_err();
    match &err {
        DatasetError::CellType { location, column, .. } => {
            assert_eq!(location.sheet.as_deref(), Some("Reviews"));
            assert_eq!(location.row, Some(3));
            assert_eq!(column, "review");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("d.xlsx"));
}

#[test]
fn numbers_in_cells_read_as_excel_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (c, h) in ["Sentence #", "Word", "POS", "Tag"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "Sentence: 1").unwrap();
    sheet.write_number(1, 1, 2010.0).unwrap();
    sheet.write_string(1, 3, "B-tim").unwrap();
    sheet.write_number(2, 1, 3.5).unwrap();
    sheet.write_string(2, 3, "O").unwrap();
    sheet.write_boolean(3, 1, true).unwrap();
    sheet.write_string(3, 3, "O").unwrap();
    workbook.save(&path).unwrap();
    let data = load_ner(&path, &NerOptions::default()).unwrap();
    assert_eq!(data.sentences[0].words, ["2010", "3.5", "TRUE"]);
}

#[test]
fn missing_sheet_lists_sheets() {
    let dir = tempfile::tempdir().unwrap();
    let xlsx = write_xlsx(dir.path(), "s.xlsx", "Only", &reviews_rows());
    let options = ClassificationOptions { sheet: Some("Other".into()), ..ClassificationOptions::notebook() };
    let err = load_classification(&xlsx, &options).unwrap_err();
    assert!(matches!(&err, DatasetError::MissingSheet { found, .. } if found == &["Only"]), "{err:?}");
    let options = ClassificationOptions { sheet: Some("Only".into()), ..ClassificationOptions::notebook() };
    assert_eq!(load_classification(&xlsx, &options).unwrap().examples.len(), 3);
}

/// The Kaggle NER layout: `Sentence #` only on each sentence's first row.
fn ner_rows() -> Vec<Vec<Option<&'static str>>> {
    vec![
        vec![Some("Sentence #"), Some("Word"), Some("POS"), Some("Tag")],
        vec![Some("Sentence: 1"), Some("Thousands"), Some("NNS"), Some("O")],
        vec![None, Some("marched"), Some("VBN"), Some("O")],
        vec![None, Some("in"), Some("IN"), Some("O")],
        vec![None, Some("London"), Some("NNP"), Some("B-geo")],
        vec![Some("Sentence: 2"), Some("None"), Some("NNP"), Some("B-per")],
        vec![None, Some("Smith"), Some("NNP"), Some("I-per")],
        vec![None, None, Some("NNP"), Some("O")],
        vec![Some("Sentence: 10"), Some("Odd"), Some("JJ"), Some("B-xyz-bad")],
        vec![None, Some("tag"), Some("NN"), Some("X")],
        vec![Some("Sentence: 3"), Some("#NAME?"), Some("NN"), Some("O")],
    ]
}

fn check_ner(data: &datasets::NerData) {
    let ids: Vec<&str> = data.sentences.iter().map(|s| s.id.as_str()).collect();
    // File order, not pandas' lexicographic group order; sentence 10 is dropped.
    assert_eq!(ids, ["Sentence: 1", "Sentence: 2", "Sentence: 3"]);
    assert_eq!(data.sentences[0].words, ["Thousands", "marched", "in", "London"]);
    // The word `None` is a word (pandas would drop it as NaN).
    assert_eq!(data.sentences[1].words, ["None", "Smith"]);
    assert_eq!(data.sentences[2].words, ["#NAME?"]);
    let tag = |i: usize, j: usize| data.labels.tag(data.sentences[i].tags[j]).unwrap();
    assert_eq!((tag(0, 3), tag(1, 0), tag(1, 1)), ("B-geo", "B-per", "I-per"));
    assert_eq!(data.tokens_read, 10);
    assert_eq!(data.dropped_tokens.to_string(), "dropped 1 tokens: 1 missing Word");
    assert_eq!(data.dropped_sentences.to_string(), "dropped 1 sentences: 1 unknown tag (B-xyz-bad: 1, X: 1)");
    assert_eq!(data.token_count(), 7);
}

#[test]
fn ner_xlsx_csv_and_gz_forward_fill_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ner_rows();
    let csv: String =
        rows.iter().map(|r| r.iter().map(|c| c.unwrap_or("")).collect::<Vec<_>>().join(",") + "\n").collect();
    let labels = NerLabels::gmb();
    let options = NerOptions { labels: Some(labels.clone()), ..NerOptions::default() };
    let xlsx = write_xlsx(dir.path(), "n.xlsx", "Sheet1", &rows);
    let csv_path = write(dir.path(), "n.csv", csv.as_bytes());
    let gz = write_gz(dir.path(), "n.csv.gz", csv.as_bytes());
    for path in [&xlsx, &csv_path, &gz] {
        let data = load_ner(path, &options).unwrap();
        check_ner(&data);
        assert_eq!(data.labels, labels);
    }
}

#[test]
fn ner_labels_derived_from_data() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "Sentence #,Word,Tag\nSentence: 1,Paul,B-person\n,went,O\n,to,O\n,Rome,B-geo-loc\n\
Sentence: 2,Big,B-corporation\n,Co,I-corporation\nSentence: 3,bad,E-person\n";
    let path = write(dir.path(), "d.csv", csv.as_bytes());
    let data = load_ner(&path, &NerOptions::default()).unwrap();
    assert_eq!(
        data.labels.tags(),
        ["O", "B-corporation", "I-corporation", "B-geo-loc", "I-geo-loc", "B-person", "I-person"]
    );
    assert_eq!(data.sentences.len(), 2);
    assert_eq!(data.dropped_sentences.count(&DropReason::UnknownTag), 1);
    // A given label set is used as it is: here it lacks B-geo-loc.
    let options = NerOptions {
        labels: Some(NerLabels::new(&["O", "B-person", "I-person", "B-corporation", "I-corporation"]).unwrap()),
        ..NerOptions::default()
    };
    let data = load_ner(&path, &options).unwrap();
    assert_eq!(data.sentences.len(), 1);
    assert_eq!(data.sentences[0].words, ["Big", "Co"]);
    assert_eq!(data.dropped_sentences.total(), 2);
}

#[test]
fn ner_same_key_later_in_file_joins_its_sentence_and_leading_rows_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "Sentence #,Word,Tag\n,orphan,O\nSentence: 2,a,O\nSentence: 1,b,O\nSentence: 2,c,O\n";
    let path = write(dir.path(), "k.csv", csv.as_bytes());
    let data = load_ner(&path, &NerOptions::default()).unwrap();
    let got: Vec<(&str, Vec<&str>)> =
        data.sentences.iter().map(|s| (s.id.as_str(), s.words.iter().map(String::as_str).collect())).collect();
    assert_eq!(got, [("Sentence: 2", vec!["a", "c"]), ("Sentence: 1", vec!["b"])]);
    assert_eq!(data.dropped_tokens.to_string(), "dropped 1 tokens: 1 missing Sentence #");
}

#[test]
fn windows_1252_csv_with_crlf_is_detected_or_chosen() {
    let dir = tempfile::tempdir().unwrap();
    // "Sentence: 1,Café,NNP,B-org\r\n" etc. in Windows-1252: é = 0xE9, ’ = 0x92.
    let mut bytes = b"Sentence #,Word,POS,Tag\r\nSentence: 1,Caf".to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(b",NNP,B-org\r\n,Lyon,NNP,B-geo\r\n,it");
    bytes.push(0x92);
    bytes.extend_from_slice(b"s,PRP,O\r\n");
    let path = write(dir.path(), "w.csv", &bytes);
    let auto = load_ner(&path, &NerOptions::default()).unwrap();
    assert_eq!(auto.sentences[0].words, ["Café", "Lyon", "it\u{2019}s"]);
    let chosen = NerOptions { encoding: TextEncoding::Windows1252, ..NerOptions::default() };
    assert_eq!(load_ner(&path, &chosen).unwrap(), auto);
    let utf8 = NerOptions { encoding: TextEncoding::Utf8, ..NerOptions::default() };
    assert!(matches!(load_ner(&path, &utf8).unwrap_err(), DatasetError::Encoding { .. }));
    // The same text in UTF-8 (with a BOM) is read as UTF-8: é is not mangled.
    let utf8_bytes =
        "\u{feff}Sentence #,Word,POS,Tag\r\nSentence: 1,Café,NNP,B-org\r\n,Lyon,NNP,B-geo\r\n,it\u{2019}s,PRP,O\r\n";
    let path = write(dir.path(), "u.csv", utf8_bytes.as_bytes());
    assert_eq!(load_ner(&path, &NerOptions::default()).unwrap().sentences, auto.sentences);
}

#[test]
fn conll_text_with_tab_only_separators_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let text = "@paul\tB-person\r\nloves\tO\r\nNew\tB-geo-loc\r\nYork\tI-geo-loc\r\n\t\r\nso\tO\r\ncool\tO\r\n\r\n\r\n-DOCSTART-\tO\n\nlast\tB-product\n";
    let path = write(dir.path(), "wnut.txt", text.as_bytes());
    let data = load_ner(&path, &NerOptions::default()).unwrap();
    let words: Vec<Vec<&str>> = data.sentences.iter().map(|s| s.words.iter().map(String::as_str).collect()).collect();
    assert_eq!(words, [vec!["@paul", "loves", "New", "York"], vec!["so", "cool"], vec!["last"]]);
    assert_eq!(data.sentences[0].id, "line 1");
    assert_eq!(data.labels.len(), 7);
    assert_eq!(data.labels.tag(data.sentences[0].tags[3]), Some("I-geo-loc"));
    let gz = write_gz(dir.path(), "wnut.conll.gz", text.as_bytes());
    assert_eq!(load_ner(&gz, &NerOptions::default()).unwrap(), data);
    // Space-separated CoNLL-2003 columns: the tag is the last column.
    let conll03 = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n";
    let path = write(dir.path(), "c.conll", conll03.as_bytes());
    let data = load_ner(&path, &NerOptions::default()).unwrap();
    assert_eq!(data.sentences[0].words, ["EU", "rejects"]);
}

#[test]
fn bad_conll_line_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.txt", b"ok\tO\nlonely\n");
    let err = load_ner(&path, &NerOptions::default()).unwrap_err();
    match &err {
        DatasetError::Conll { location, .. } => assert_eq!(location.line(), Some(2)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("bad.txt, line 2"), "{err}");
}

#[test]
fn format_from_extension() {
    let f = |p: &str| FileFormat::from_path(p.as_ref());
    assert_eq!(f("a.XLSX").unwrap(), FileFormat::Xlsx);
    assert_eq!(f("a.csv").unwrap(), FileFormat::Csv { gzip: false });
    assert_eq!(f("dir.v2/a.csv.gz").unwrap(), FileFormat::Csv { gzip: true });
    assert_eq!(f("ner.txt").unwrap(), FileFormat::Conll { gzip: false });
    assert!(matches!(f("a.json"), Err(DatasetError::UnsupportedFormat { .. })));
    assert!(f("a.xlsx.gz").is_err());
}

#[test]
fn loading_many_rows_keeps_file_order_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("review,sentiment\n");
    for i in 0..2000 {
        let label = if i % 3 == 0 { "negative" } else { "positive" };
        csv.push_str(&format!("\"Review {i}<br />line &amp; more\",{label}\n"));
    }
    let path = write(dir.path(), "many.csv", csv.as_bytes());
    let load = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| load_classification(&path, &ClassificationOptions::default()).unwrap())
    };
    let one = load(1);
    assert_eq!(one, load(4));
    assert_eq!(one.examples.len(), 2000);
    assert!(one
        .examples
        .iter()
        .enumerate()
        .all(|(i, e)| e.row == i as u64 + 2 && e.text == format!("Review {i}line more")));
}

#[test]
fn reviews_that_clean_to_nothing_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "review,sentiment\n\"<br /><br />\",positive\nFine film,positive\n\"  <p> </p> \",negative\n";
    let path = write(dir.path(), "r.csv", csv.as_bytes());
    let data = load_classification(&path, &ClassificationOptions::default()).unwrap();
    let texts: Vec<&str> = data.examples.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["Fine film"]);
    assert_eq!(data.rows_read, 3);
    assert_eq!(data.dropped.count(&DropReason::EmptyAfterCleaning), 2);
    assert_eq!(data.dropped.to_string(), "dropped 2 rows: 2 empty after cleaning");
}

#[test]
fn one_invalid_byte_does_not_garble_the_valid_utf8_around_it() {
    let dir = tempfile::tempdir().unwrap();
    // Line 2 is UTF-8 ("Zürich"); line 3 holds one stray Windows-1252 byte (0xE9, é).
    let mut bytes = "Sentence #,Word,POS,Tag\nSentence: 1,Zürich,NNP,B-geo\n,Caf".as_bytes().to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(b",NNP,B-org\n");
    let path = write(dir.path(), "mixed.csv", &bytes);
    let data = load_ner(&path, &NerOptions::default()).unwrap();
    assert_eq!(data.sentences[0].words, ["Zürich", "Café"]);
}

#[test]
fn a_data_path_that_is_not_a_regular_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("reviews.csv");
    std::fs::create_dir(&folder).unwrap();
    let err = load_classification(&folder, &ClassificationOptions::default()).unwrap_err().to_string();
    assert!(err.contains("reviews.csv") && err.contains("not a regular file"), "{err}");
    // A device that never ends is refused instead of being read (or hashed) forever.
    let err = datasets::KeyBuilder::new("test").file(std::path::Path::new("/dev/zero")).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("/dev/zero") && e.contains("not a regular file")));
}
