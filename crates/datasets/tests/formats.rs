//! The user's own formats: CSV, TSV, JSON lines and XLSX for classification; CoNLL, JSON lines and the Kaggle
//! table for NER; column defaults, derived label order, IOB1 repair, and the errors that name the line.

mod common;

use common::{write, write_gz, write_xlsx};
use datasets::{
    load_classification, load_ner, ClassificationOptions, DatasetError, DropReason, FileFormat, NerData, NerOptions,
};

fn pairs(data: &datasets::ClassificationData) -> Vec<(String, u32)> {
    data.examples.iter().map(|e| (e.text.clone(), e.label)).collect()
}

/// Each sentence as (words, tag names).
fn sentences(data: &NerData) -> Vec<(Vec<String>, Vec<String>)> {
    data.sentences
        .iter()
        .map(|s| {
            let tags = s.tags.iter().map(|&t| data.labels.tag(t).unwrap().to_owned()).collect();
            (s.words.clone(), tags)
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn classification_csv_tsv_jsonl_and_xlsx_load_the_same_examples() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "text,label\n\"Great film, truly\",pos\nDull &amp; slow,neg\nNo label,\nSays \"wow\",pos\n";
    // TSV: no quoting, the quotes are part of the text.
    let tsv = "text\tlabel\nGreat film, truly\tpos\nDull &amp; slow\tneg\nNo label\t\nSays \"wow\"\tpos\n";
    let jsonl = "{\"text\": \"Great film, truly\", \"label\": \"pos\"}\n\n\
                 {\"label\": \"neg\", \"text\": \"Dull &amp; slow\", \"extra\": [1]}\r\n\
                 {\"text\": \"No label\", \"label\": null}\n\
                 {\"text\": \"Says \\\"wow\\\"\", \"label\": \"pos\"}\n";
    let rows = vec![
        vec![Some("text"), Some("label")],
        vec![Some("Great film, truly"), Some("pos")],
        vec![Some("Dull &amp; slow"), Some("neg")],
        vec![Some("No label"), None],
        vec![Some("Says \"wow\""), Some("pos")],
    ];
    let paths = [
        write(dir.path(), "a.csv", csv.as_bytes()),
        write_gz(dir.path(), "a.csv.gz", csv.as_bytes()),
        write(dir.path(), "a.tsv", tsv.as_bytes()),
        write_gz(dir.path(), "a.tsv.gz", tsv.as_bytes()),
        write(dir.path(), "a.jsonl", jsonl.as_bytes()),
        write_gz(dir.path(), "a.jsonl.gz", jsonl.as_bytes()),
        write(dir.path(), "a.ndjson", jsonl.as_bytes()),
        write_xlsx(dir.path(), "a.xlsx", "Sheet1", &rows),
    ];
    let cleaned = vec![("Great film, truly".to_owned(), 1), ("Dull slow".to_owned(), 0), ("Says wow".to_owned(), 1)];
    let raw =
        vec![("Great film, truly".to_owned(), 1), ("Dull &amp; slow".to_owned(), 0), ("Says \"wow\"".to_owned(), 1)];
    let as_is = ClassificationOptions { clean: false, ..ClassificationOptions::default() };
    for (options, want) in [(ClassificationOptions::default(), cleaned), (as_is.clone(), raw)] {
        for path in &paths {
            let data = load_classification(path, &options).unwrap();
            assert_eq!(pairs(&data), want, "{}", path.display());
            assert_eq!(data.label_names, ["neg", "pos"], "{}", path.display());
            assert_eq!(data.rows_read, 4, "{}", path.display());
            assert_eq!(data.dropped.to_string(), "dropped 1 rows: 1 missing label", "{}", path.display());
        }
    }
    // TSV has no quoting: a field that starts with a quote is read as it is, and does not swallow the next lines.
    let path = write(dir.path(), "q.tsv", b"text\tlabel\n\"Quoted start\tpos\nnext\tneg\n");
    let data = load_classification(&path, &as_is).unwrap();
    assert_eq!(pairs(&data), [("\"Quoted start".to_owned(), 1), ("next".to_owned(), 0)]);
    // JSON lines are numbered by line (the blank line 2 counts), tables by row (header = 1).
    let data = load_classification(&paths[4], &ClassificationOptions::default()).unwrap();
    assert_eq!(data.examples.iter().map(|e| e.row).collect::<Vec<_>>(), [1, 3, 5]);
    // A label that is an integer or a boolean is its JSON text.
    let typed = write(
        dir.path(),
        "t.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": true}\n{\"text\": \"c\", \"label\": 0}\n",
    );
    let data = load_classification(&typed, &ClassificationOptions::default()).unwrap();
    assert_eq!(data.label_names, ["0", "1", "true"]);
    assert_eq!(pairs(&data), [("a".to_owned(), 1), ("b".to_owned(), 2), ("c".to_owned(), 0)]);
}

#[test]
fn format_detection_depends_on_the_task() {
    let tsv = std::path::Path::new("data/train.TSV");
    assert_eq!(FileFormat::for_classification(tsv).unwrap(), FileFormat::Tsv { gzip: false });
    assert_eq!(FileFormat::for_ner(tsv).unwrap(), FileFormat::Conll { gzip: false });
    assert_eq!(FileFormat::from_path(tsv).unwrap(), FileFormat::Conll { gzip: false });
    assert_eq!(FileFormat::for_ner("x.jsonl.gz".as_ref()).unwrap(), FileFormat::JsonLines { gzip: true });
    let err = FileFormat::for_classification("x.conll".as_ref()).unwrap_err().to_string();
    assert!(err.starts_with("x.conll: unsupported file type; accepted: .csv, .tsv, .jsonl"), "{err}");
    let err = FileFormat::for_ner("x.parquet".as_ref()).unwrap_err().to_string();
    assert!(err.contains("CoNLL .conll/.txt/.tsv/.bio/.iob") && err.contains(".jsonl"), "{err}");
}

#[test]
fn column_defaults_are_text_and_label_then_review_and_sentiment() {
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, csv: &str| {
        let path = write(dir.path(), name, csv.as_bytes());
        load_classification(&path, &ClassificationOptions::default())
    };
    // `text` and `label` win over `review` and `sentiment` when both are there.
    let data = load("both.csv", "review,text,sentiment,label\nR,T,S,L\n").unwrap();
    assert_eq!(pairs(&data), [("T".to_owned(), 0)]);
    assert_eq!(data.label_names, ["L"]);
    let data = load("notebook.csv", "review,sentiment\nR,S\n").unwrap();
    assert_eq!((pairs(&data), data.label_names), (vec![("R".to_owned(), 0)], strings(&["S"])));
    let data = load("mixed.csv", "review,label\nR,L\n,L\n").unwrap();
    assert_eq!(pairs(&data), [("R".to_owned(), 0)]);
    assert_eq!(data.dropped.to_string(), "dropped 1 rows: 1 missing review");
    // Named columns are used as they are.
    let path = write(dir.path(), "named.csv", b"body,stars,text\nB,5,T\n");
    let options = ClassificationOptions {
        text_column: Some("body".into()),
        label_column: Some("stars".into()),
        ..ClassificationOptions::default()
    };
    assert_eq!(pairs(&load_classification(&path, &options).unwrap()), [("B".to_owned(), 0)]);

    // Neither name: the error names the columns found.
    let err = load("none.csv", "body,stars\nB,5\n").unwrap_err();
    match &err {
        DatasetError::MissingColumns { missing, found, .. } => {
            assert_eq!(missing, &["text or review", "label or sentiment"]);
            assert_eq!(found, &["body", "stars"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // JSON lines: the first object's keys stand for the header.
    let path = write(dir.path(), "none.jsonl", b"\n{\"body\": \"B\", \"text\": \"T\"}\n");
    match load_classification(&path, &ClassificationOptions::default()).unwrap_err() {
        DatasetError::MissingColumns { location, missing, found } => {
            assert_eq!((&location.path, location.line()), (&path, Some(2)));
            assert_eq!(missing, ["label or sentiment"]);
            assert_eq!(found, ["body", "text"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn derived_classes_sort_numerically_when_all_integers_else_lexicographically() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "n.csv", b"text,label\na,10\nb,2\nc,-1\nd, 2 \ne,0\n");
    let data = load_classification(&path, &ClassificationOptions::default()).unwrap();
    assert_eq!(data.label_names, ["-1", "0", "2", "10"]);
    let labels: Vec<u32> = data.examples.iter().map(|e| e.label).collect();
    assert_eq!(labels, [3, 2, 0, 2, 1]);
    assert_eq!(data.class_counts(), [1, 1, 2, 1]);
    // One value that is not an integer: every value sorts as text ("10" < "2" < "x").
    let path = write(dir.path(), "t.csv", b"text,label\na,10\nb,2\nc,x\nd,B\n");
    let data = load_classification(&path, &ClassificationOptions::default()).unwrap();
    assert_eq!(data.label_names, ["10", "2", "B", "x"]);
    assert_eq!(data.examples.iter().map(|e| e.label).collect::<Vec<_>>(), [0, 1, 3, 2]);
    // The notebook's fixed labels still drop what is not positive or negative.
    let path = write(dir.path(), "r.csv", b"review,sentiment\na,positive\nb,neutral\nc,negative\n");
    let data = load_classification(&path, &ClassificationOptions::notebook()).unwrap();
    assert_eq!(pairs(&data), [("a".to_owned(), 1), ("c".to_owned(), 0)]);
    assert_eq!(data.dropped.to_string(), "dropped 1 rows: 1 unknown label (neutral: 1)");
}

#[test]
fn bad_json_lines_are_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], u64, &str); 4] = [
        ("broken.jsonl", b"{\"text\": \"a\", \"label\": 1}\n\n{\"text\": \"b\", \"label\": \n", 3, "not valid JSON"),
        ("array.jsonl", b"{\"text\": \"a\", \"label\": 1}\n[1, 2]\n", 2, "expected a JSON object, found an array"),
        ("list.jsonl", b"{\"text\": [\"a\"], \"label\": 1}\n", 1, "field \"text\" holds an array"),
        (
            "nested.jsonl",
            b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"a\", \"label\": {\"x\": 1}}\n",
            2,
            "an object",
        ),
    ];
    for (name, bytes, line, message) in cases {
        let path = write(dir.path(), name, bytes);
        let err = load_classification(&path, &ClassificationOptions::default()).unwrap_err();
        match &err {
            DatasetError::Json { location, message: got } => {
                assert_eq!((&location.path, location.line()), (&path, Some(line)), "{name}");
                assert!(got.contains(message), "{name}: {got}");
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
        assert!(err.to_string().contains(&format!("{name}, line {line}: bad JSON line")), "{err}");
    }
    // A missing text and a null label are counted drops, not errors.
    let path = write(
        dir.path(),
        "drops.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n{\"label\": 1}\n{\"text\": \"c\", \"label\": null}\n",
    );
    let data = load_classification(&path, &ClassificationOptions::default()).unwrap();
    assert_eq!(data.examples.len(), 1);
    assert_eq!(data.dropped.count(&DropReason::Missing("text".into())), 1);
    assert_eq!(data.dropped.count(&DropReason::Missing("label".into())), 1);
}

/// HF datasets' conll2003 `ClassLabel` names.
const CONLL2003_NAMES: [&str; 9] = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"];

#[test]
fn ner_conll_jsonl_strings_jsonl_ids_and_kaggle_csv_load_the_same_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let conll = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\
                 call NN I-NP O\n. . O O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n";
    let conll_tabs = conll.replace(' ', "\t");
    let strings_jsonl = "{\"id\": \"0\", \"tokens\": [\"EU\", \"rejects\", \"German\", \"call\", \".\"], \
                         \"ner_tags\": [\"B-ORG\", \"O\", \"B-MISC\", \"O\", \"O\"]}\n\
                         {\"id\": \"1\", \"tokens\": [\"Peter\", \"Blackburn\"], \"ner_tags\": [\"B-PER\", \"I-PER\"]}\n";
    let ids_jsonl = "{\"id\": \"0\", \"tokens\": [\"EU\", \"rejects\", \"German\", \"call\", \".\"], \
                     \"pos_tags\": [22, 42, 16, 21, 7], \"ner_tags\": [3, 0, 7, 0, 0]}\n\
                     {\"id\": \"1\", \"tokens\": [\"Peter\", \"Blackburn\"], \"ner_tags\": [1, 2]}\n";
    let kaggle = "Sentence #,Word,POS,Tag\nSentence: 1,EU,NNP,B-ORG\n,rejects,VBZ,O\n,German,JJ,B-MISC\n,call,NN,O\n\
                  ,.,.,O\nSentence: 2,Peter,NNP,B-PER\n,Blackburn,NNP,I-PER\n";
    let with_ids = NerOptions { label_names: Some(strings(&CONLL2003_NAMES)), ..NerOptions::default() };
    let loads = [
        (write(dir.path(), "train.conll", conll.as_bytes()), NerOptions::default()),
        (write(dir.path(), "train.tsv", conll_tabs.as_bytes()), NerOptions::default()),
        (write_gz(dir.path(), "train.txt.gz", conll.as_bytes()), NerOptions::default()),
        (write(dir.path(), "strings.jsonl", strings_jsonl.as_bytes()), NerOptions::default()),
        (write(dir.path(), "ids.jsonl", ids_jsonl.as_bytes()), with_ids),
        (write(dir.path(), "kaggle.csv", kaggle.as_bytes()), NerOptions::default()),
    ];
    let want = vec![
        (strings(&["EU", "rejects", "German", "call", "."]), strings(&["B-ORG", "O", "B-MISC", "O", "O"])),
        (strings(&["Peter", "Blackburn"]), strings(&["B-PER", "I-PER"])),
    ];
    for (path, options) in &loads {
        let data = load_ner(path, options).unwrap();
        assert_eq!(sentences(&data), want, "{}", path.display());
        assert_eq!(data.labels.tags(), ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]);
        assert_eq!((data.tokens_read, data.iob1_tags_converted), (7, 0), "{}", path.display());
        assert!(data.dropped_tokens.is_empty() && data.dropped_sentences.is_empty());
    }
    let jsonl = load_ner(&loads[3].0, &NerOptions::default()).unwrap();
    assert_eq!(jsonl.sentences[1].id, "line 2");
}

#[test]
fn ner_json_lines_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = "{\"tokens\": [\"a\"], \"ner_tags\": [\"O\"]}\n";
    let check = |name: &str, second_line: &str, options: &NerOptions, line: u64, wanted: &[&str]| {
        let path = write(dir.path(), name, format!("{good}{second_line}\n").as_bytes());
        let err = load_ner(&path, options).unwrap_err();
        let text = err.to_string();
        match &err {
            DatasetError::Json { location, .. } => assert_eq!(location.line(), Some(line), "{text}"),
            other => panic!("{name}: unexpected {other:?}"),
        }
        assert!(text.starts_with(&format!("{}, line {line}: ", path.display())), "{text}");
        for part in wanted {
            assert!(text.contains(part), "{name}: {text} lacks {part}");
        }
    };
    let plain = NerOptions::default();
    check(
        "ints.jsonl",
        "{\"tokens\": [\"EU\", \"x\"], \"ner_tags\": [3, 0]}",
        &plain,
        2,
        &["integer tag ids", "label names", "NerOptions::label_names"],
    );
    let names = NerOptions { label_names: Some(strings(&CONLL2003_NAMES)), ..NerOptions::default() };
    check("range.jsonl", "{\"tokens\": [\"EU\"], \"ner_tags\": [9]}", &names, 2, &["tag id 9", "9 label names"]);
    check("negative.jsonl", "{\"tokens\": [\"EU\"], \"ner_tags\": [-1]}", &names, 2, &["tag id -1"]);
    check(
        "lengths.jsonl",
        "{\"tokens\": [\"a\", \"b\"], \"ner_tags\": [\"O\"]}",
        &plain,
        2,
        &["\"tokens\" has 2 items but \"ner_tags\" has 1"],
    );
    check("missing.jsonl", "{\"words\": [\"a\"], \"ner_tags\": [\"O\"]}", &plain, 2, &["no \"tokens\" list", "words"]);
    check("token.jsonl", "{\"tokens\": [\"a\", 5], \"ner_tags\": [\"O\", \"O\"]}", &plain, 2, &["item 1 is a number"]);
    check("text.jsonl", "not json", &plain, 2, &["not valid JSON"]);
    // Field names can be changed; an empty sentence is a counted drop.
    let path = write(
        dir.path(),
        "fields.jsonl",
        b"{\"words\": [\"a\"], \"tags\": [\"B-X\"]}\n{\"words\": [], \"tags\": []}\n",
    );
    let options = NerOptions { tokens_field: "words".into(), tags_field: "tags".into(), ..NerOptions::default() };
    let data = load_ner(&path, &options).unwrap();
    assert_eq!(sentences(&data), [(strings(&["a"]), strings(&["B-X"]))]);
    assert_eq!(data.dropped_sentences.to_string(), "dropped 1 sentences: 1 missing words");
}

#[test]
fn iob1_tags_are_read_as_iob2_and_counted_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    // CoNLL-2003 as first published (IOB1): entities start with I-; B- only between two entities of one type.
    let conll = "U.N. NNP I-NP I-ORG\nofficial NN I-NP O\nEkeus NNP I-NP I-PER\nheads VBZ I-VP O\n\
                 for IN I-PP O\nBaghdad NNP I-NP I-LOC\n. . O O\n\nSmith NNP I-NP I-PER\nJones NNP I-NP B-PER\n\
                 Lee NNP I-NP I-PER\nNew NNP I-NP I-LOC\nYork NNP I-NP I-LOC\n";
    let jsonl = "{\"tokens\": [\"U.N.\", \"official\", \"Ekeus\", \"heads\", \"for\", \"Baghdad\", \".\"], \
                 \"ner_tags\": [\"I-ORG\", \"O\", \"I-PER\", \"O\", \"O\", \"I-LOC\", \"O\"]}\n\
                 {\"tokens\": [\"Smith\", \"Jones\", \"Lee\", \"New\", \"York\"], \
                 \"ner_tags\": [\"I-PER\", \"B-PER\", \"I-PER\", \"I-LOC\", \"I-LOC\"]}\n";
    let kaggle = "Sentence #,Word,Tag\nS1,U.N.,I-ORG\n,official,O\n,Ekeus,I-PER\n,heads,O\n,for,O\n,Baghdad,I-LOC\n\
                  ,.,O\nS2,Smith,I-PER\n,Jones,B-PER\n,Lee,I-PER\n,New,I-LOC\n,York,I-LOC\n";
    let want = vec![
        (
            strings(&["U.N.", "official", "Ekeus", "heads", "for", "Baghdad", "."]),
            strings(&["B-ORG", "O", "B-PER", "O", "O", "B-LOC", "O"]),
        ),
        (strings(&["Smith", "Jones", "Lee", "New", "York"]), strings(&["B-PER", "B-PER", "I-PER", "B-LOC", "I-LOC"])),
    ];
    for path in [
        write(dir.path(), "iob1.conll", conll.as_bytes()),
        write(dir.path(), "iob1.jsonl", jsonl.as_bytes()),
        write(dir.path(), "iob1.csv", kaggle.as_bytes()),
    ] {
        let data = load_ner(&path, &NerOptions::default()).unwrap();
        assert_eq!(sentences(&data), want, "{}", path.display());
        // U.N., Ekeus, Baghdad, Smith, New.
        assert_eq!(data.iob1_tags_converted, 5, "{}", path.display());
        assert_eq!(data.labels.tags(), ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]);
    }
}
