//! Given splits: the user's train, validation and test files; labels from the training file, strict validation and
//! test files, split sources, sampling, leakage, and files that give no examples.

mod common;

use std::path::{Path, PathBuf};

use common::{tokenizer, write};
use datasets::{
    prepare_classification, prepare_classification_files, prepare_classification_test, prepare_ner_files,
    prepare_ner_test, CacheStatus, ClassificationOptions, DatasetError, DropReason, LabelSpec, Leakage, NerLabels,
    NerOptions, PrepareOptions, SplitFiles, SplitName, SplitSource, TestSize, UnknownLabels,
};

fn prepare_options(cache: Option<&Path>) -> PrepareOptions {
    PrepareOptions {
        test_size: TestSize::Count(2),
        cache_dir: cache.map(Path::to_path_buf),
        ..PrepareOptions::default()
    }
}

/// A training CSV of `n` rows, labels `pos`/`neg` alternating, texts `text 0`, `text 1`, ...
fn train_csv(n: usize) -> String {
    let mut csv = String::from("text,label\n");
    for i in 0..n {
        csv.push_str(&format!("text {i},{}\n", if i % 2 == 0 { "pos" } else { "neg" }));
    }
    csv
}

fn unknown_label(err: &DatasetError) -> (&Path, Option<u64>, Option<u64>, &str, &[String]) {
    match err {
        DatasetError::UnknownLabel { location, label, known } => (
            location.path.as_path(),
            location.row.filter(|_| !location.in_lines),
            location.line(),
            label.as_str(),
            known.as_slice(),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn given_splits_are_used_as_they_are_and_sample_ratio_samples_training_only() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", train_csv(10).as_bytes());
    let validation = write(dir.path(), "dev.jsonl", b"{\"text\": \"v 0\", \"label\": \"neg\"}\n{\"text\": \"v 1\", \"label\": \"pos\"}\n{\"text\": \"v 2\", \"label\": \"pos\"}\n");
    let test = write(dir.path(), "test.tsv", b"text\tlabel\nt 0\tpos\nt 1\tneg\nt 2\tpos\nt 3\tneg\n");
    let files = SplitFiles::new(&train).with_validation(&validation).with_test(&test);
    let prepare = PrepareOptions { sample_ratio: 0.5, ..prepare_options(None) };
    let ds = prepare_classification_files(&files, &ClassificationOptions::default(), &tokenizer(), &prepare).unwrap();
    assert_eq!(ds.examples().len(), 17);
    assert_eq!(ds.label_names(), ["neg", "pos"]);
    // Half the training file, sampled; all of the validation and test files, in file order.
    assert_eq!(ds.train().len(), 5);
    assert!(ds.train().iter().all(|&i| i < 10));
    assert_eq!(ds.validation(), [10, 11, 12]);
    assert_eq!(ds.test(), [13, 14, 15, 16]);
    let labels: Vec<u32> = ds
        .test()
        .iter()
        .map(|&i| match ds.examples()[i].target {
            datasets::Target::Class(c) => c,
            _ => panic!("a class target"),
        })
        .collect();
    assert_eq!(labels, [1, 0, 1, 0]);
    let sources = ds.sources();
    assert_eq!(sources.train, SplitSource::Given(train.clone()));
    assert_eq!(sources.validation, SplitSource::Given(validation.clone()));
    assert_eq!(sources.test, SplitSource::Given(test.clone()));
    let reports: Vec<(&Path, SplitName, u64, usize)> =
        ds.data().files().iter().map(|f| (f.path.as_path(), f.split, f.rows_read, f.examples)).collect();
    assert_eq!(
        reports,
        [
            (train.as_path(), SplitName::Train, 10, 10),
            (validation.as_path(), SplitName::Validation, 3, 3),
            (test.as_path(), SplitName::Test, 4, 4)
        ]
    );
    assert_eq!(ds.data().rows_read(), 17);
    assert_eq!(ds.leakage(), Leakage { validation: 0, test: 0 });
    assert_eq!(ds.caches().len(), 3);
    // The same seed samples the same training examples.
    let again =
        prepare_classification_files(&files, &ClassificationOptions::default(), &tokenizer(), &prepare).unwrap();
    assert_eq!(again.train(), ds.train());
}

#[test]
fn a_missing_test_split_is_drawn_from_training_as_one_file_would_be() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", train_csv(12).as_bytes());
    let validation = write(dir.path(), "dev.csv", b"text,label\nv,pos\n");
    let options = ClassificationOptions::default();
    let tok = tokenizer();
    let files = SplitFiles::new(&train).with_validation(&validation);
    let ds = prepare_classification_files(&files, &options, &tok, &prepare_options(None)).unwrap();
    let one_file = prepare_classification(&train, &options, &tok, &prepare_options(None)).unwrap();
    assert_eq!(ds.test().len(), 2);
    assert_eq!((ds.train(), ds.test()), (one_file.train(), one_file.test()));
    assert_eq!(ds.validation(), [12]);
    assert_eq!(ds.sources().test, SplitSource::DrawnFromTraining(TestSize::Count(2)));
    assert_eq!(one_file.sources().test, SplitSource::DrawnFromTraining(TestSize::Count(2)));
    let again = prepare_classification_files(&files, &options, &tok, &prepare_options(None)).unwrap();
    assert_eq!(again.test(), ds.test());
    let other_seed = PrepareOptions { seed: 7, ..prepare_options(None) };
    let other = prepare_classification_files(&files, &options, &tok, &other_seed).unwrap();
    assert_ne!(other.test(), ds.test());
    // The drawn test split is not sampled: only training is.
    let sampled = PrepareOptions { sample_ratio: 0.5, ..prepare_options(None) };
    let sampled = prepare_classification_files(&files, &options, &tok, &sampled).unwrap();
    assert_eq!((sampled.train().len(), sampled.test(), sampled.validation()), (5, ds.test(), ds.validation()));
    // Too small a training file for the test size: the error names it.
    let big = PrepareOptions { test_size: TestSize::Count(12), ..prepare_options(None) };
    let err = prepare_classification_files(&files, &options, &tok, &big).unwrap_err().to_string();
    assert!(err.contains("no test file") && err.contains("train.csv"), "{err}");
}

#[test]
fn holding_out_validation_is_refused_when_a_validation_file_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", train_csv(12).as_bytes());
    let validation = write(dir.path(), "dev.csv", b"text,label\nv,pos\n");
    let tok = tokenizer();
    let options = ClassificationOptions::default();
    let mut given = prepare_classification_files(
        &SplitFiles::new(&train).with_validation(&validation),
        &options,
        &tok,
        &prepare_options(None),
    )
    .unwrap();
    let before = (given.train().to_vec(), given.validation().to_vec());
    let err = given.hold_out_validation(0.25, 1).unwrap_err().to_string();
    assert!(err.contains("dev.csv") && err.contains("given"), "{err}");
    assert_eq!((given.train().to_vec(), given.validation().to_vec()), before);
    // Without a validation file the caller holds one out of the training split.
    let mut drawn =
        prepare_classification_files(&SplitFiles::new(&train), &options, &tok, &prepare_options(None)).unwrap();
    assert_eq!(drawn.sources().validation, SplitSource::Absent);
    drawn.hold_out_validation(0.25, 1).unwrap();
    assert_eq!((drawn.train().len(), drawn.validation().len(), drawn.test().len()), (7, 3, 2));
    assert_eq!(drawn.sources().validation, SplitSource::DrawnFromTraining(TestSize::Fraction(0.25)));
}

#[test]
fn a_validation_or_test_label_unseen_in_training_is_an_error_naming_label_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", train_csv(6).as_bytes());
    let tok = tokenizer();
    let options = ClassificationOptions::default();
    let validation = write(
        dir.path(),
        "dev.jsonl",
        b"{\"text\": \"a\", \"label\": \"pos\"}\n\n{\"text\": \"b\", \"label\": \"neutral\"}\n",
    );
    let files = SplitFiles::new(&train).with_validation(&validation);
    let err = prepare_classification_files(&files, &options, &tok, &prepare_options(None)).unwrap_err();
    assert_eq!(
        unknown_label(&err),
        (validation.as_path(), None, Some(3), "neutral", &["neg".to_owned(), "pos".to_owned()][..])
    );
    assert!(err.to_string().contains("dev.jsonl, line 3: label \"neutral\" is not in the training label set"), "{err}");
    let test = write(dir.path(), "test.csv", b"text,label\na,pos\nb,neg\nc,Pos\n");
    let files = SplitFiles::new(&train).with_test(&test);
    let err = prepare_classification_files(&files, &options, &tok, &prepare_options(None)).unwrap_err();
    let (path, row, line, label, _) = unknown_label(&err);
    assert_eq!((path, row, line, label), (test.as_path(), Some(4), None, "Pos"));

    // With fixed labels, a label the training file dropped (`plot`) is dropped again; any other is an error.
    let rt = ClassificationOptions::rotten_tomatoes();
    let rt_train = write(dir.path(), "rt.csv", b"category,text\nfresh,a\nrotten,b\nplot,c\nfresh,d\nrotten,e\n");
    let rt_test = write(dir.path(), "rt_test.csv", b"category,text\nplot,x\nfresh,y\n");
    let ds = prepare_classification_files(
        &SplitFiles::new(&rt_train).with_test(&rt_test),
        &rt,
        &tok,
        &prepare_options(None),
    )
    .unwrap();
    assert_eq!(ds.test().len(), 1);
    assert_eq!(ds.data().files()[1].dropped[0].count(&DropReason::UnknownLabel), 1);
    assert_eq!(ds.data().dropped()[0].to_string(), "dropped 2 rows: 2 unknown label (plot: 2)");
    let typo = write(dir.path(), "rt_typo.csv", b"category,text\nfrsh,x\nfresh,y\n");
    let err =
        prepare_classification_files(&SplitFiles::new(&rt_train).with_test(&typo), &rt, &tok, &prepare_options(None))
            .unwrap_err();
    let (path, row, _, label, known) = unknown_label(&err);
    assert_eq!(
        (path, row, label, known),
        (typo.as_path(), Some(2), "frsh", &["rotten".to_owned(), "fresh".to_owned()][..])
    );
}

#[test]
fn ner_tags_come_from_training_and_validation_and_test_are_strict() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(
        dir.path(),
        "train.conll",
        b"-DOCSTART- -X- O O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\n\nin IN B-PP O\nParis NNP B-NP I-PER\n\nthe DT B-NP O\n",
    );
    let test = write(dir.path(), "test.jsonl", b"{\"tokens\": [\"John\"], \"ner_tags\": [\"B-PER\"]}\n{\"tokens\": [\"in\", \"Paris\"], \"ner_tags\": [\"O\", \"B-LOC\"]}\n");
    let tok = tokenizer();
    let err = prepare_ner_files(
        &SplitFiles::new(&train).with_test(&test),
        &NerOptions::default(),
        &tok,
        &prepare_options(None),
    )
    .unwrap_err();
    let (path, row, line, label, known) = unknown_label(&err);
    assert_eq!((path, row, line, label), (test.as_path(), None, Some(2), "B-LOC"));
    assert_eq!(known, ["O", "B-PER", "I-PER"]);

    let test = write(dir.path(), "test.txt", b"John\tB-PER\nlives\tO\n\nParis\tI-PER\n");
    let ds = prepare_ner_files(
        &SplitFiles::new(&train).with_test(&test),
        &NerOptions::default(),
        &tok,
        &prepare_options(None),
    )
    .unwrap();
    assert_eq!(ds.label_names(), ["O", "B-PER", "I-PER"]);
    assert_eq!(ds.train(), [0, 1, 2]);
    assert_eq!(ds.test(), [3, 4]);
    // `Paris I-PER` after a blank line starts an entity: converted in training (after `O`) and in the test file.
    let converted: Vec<u64> = ds.data().files().iter().map(|f| f.iob1_tags_converted).collect();
    assert_eq!(converted, [1, 1]);
    // The first test sentence is the training file's first: one leaked test example.
    assert_eq!(ds.leakage(), Leakage { validation: 0, test: 1 });
}

#[test]
fn leakage_counts_validation_and_test_texts_also_in_training() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(8);
    let train = write(dir.path(), "train.csv", csv.as_bytes());
    let same = write(dir.path(), "same.csv", csv.as_bytes());
    // "text 3<br />" cleans to "text 3", a training text; "text 30" is new.
    let validation = write(dir.path(), "dev.csv", b"text,label\ntext 3<br />,neg\ntext 30,pos\ntext 5,neg\n");
    let files = SplitFiles::new(&train).with_validation(&validation).with_test(&same);
    let ds =
        prepare_classification_files(&files, &ClassificationOptions::default(), &tokenizer(), &prepare_options(None))
            .unwrap();
    assert_eq!(ds.leakage(), Leakage { validation: 2, test: 8 });
    // Leakage is counted against the training split as it stands.
    let mut sampled = ds.clone();
    sampled.sample_train(0.5, 3, 0).unwrap();
    let kept = sampled.train().len();
    assert_eq!(kept, 4);
    assert_eq!(sampled.leakage().test, kept);
}

#[test]
fn files_that_give_no_examples_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", train_csv(6).as_bytes());
    let tok = tokenizer();
    let options = ClassificationOptions::default();
    let run = |validation: &PathBuf| {
        let files = SplitFiles::new(&train).with_validation(validation);
        prepare_classification_files(&files, &options, &tok, &prepare_options(None)).unwrap_err()
    };
    let header_only = write(dir.path(), "header.csv", b"text,label\n");
    let err = run(&header_only);
    assert!(matches!(&err, DatasetError::NoExamples { path, .. } if path == &header_only), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no examples in {}: the file holds no data (0 rows read)", header_only.display())
    );
    let all_dropped = write(dir.path(), "dropped.csv", b"text,label\na,\n,pos\n");
    assert_eq!(
        run(&all_dropped).to_string(),
        format!(
            "no examples in {}: 2 rows read; dropped 2 rows: 1 missing label, 1 missing text",
            all_dropped.display()
        )
    );
    let empty_jsonl = write(dir.path(), "empty.jsonl", b"\n\n");
    assert!(matches!(run(&empty_jsonl), DatasetError::NoExamples { path, .. } if path == empty_jsonl));
    // An empty training file, and an empty NER file.
    let files = SplitFiles::new(&header_only);
    let err = prepare_classification_files(&files, &options, &tok, &prepare_options(None)).unwrap_err();
    assert!(matches!(&err, DatasetError::NoExamples { path, .. } if path == &header_only), "{err:?}");
    let conll = write(dir.path(), "empty.conll", b"-DOCSTART- O\n\n");
    let err =
        prepare_ner_files(&SplitFiles::new(&conll), &NerOptions::default(), &tok, &prepare_options(None)).unwrap_err();
    assert_eq!(err.to_string(), format!("no examples in {}: the file holds no data (0 tokens read)", conll.display()));
}

#[test]
fn each_file_goes_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", train_csv(6).as_bytes());
    let test = write(dir.path(), "test.csv", b"text,label\na,pos\nb,neg\n");
    let cache = dir.path().join("processed");
    let files = SplitFiles::new(&train).with_test(&test);
    let tok = tokenizer();
    let options = ClassificationOptions::default();
    let first = prepare_classification_files(&files, &options, &tok, &prepare_options(Some(&cache))).unwrap();
    let statuses: Vec<&CacheStatus> = first.caches().iter().map(|c| &c.status).collect();
    assert_eq!(statuses, [&CacheStatus::Missing, &CacheStatus::Missing]);
    let second = prepare_classification_files(&files, &options, &tok, &prepare_options(Some(&cache))).unwrap();
    let statuses: Vec<&CacheStatus> = second.caches().iter().map(|c| &c.status).collect();
    assert_eq!(statuses, [&CacheStatus::Hit, &CacheStatus::Hit]);
    assert_eq!(second.data(), first.data());
    assert_eq!((second.train(), second.test()), (first.train(), first.test()));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    // A test file with a new label fails even though the training file comes from the cache.
    write(dir.path(), "test.csv", b"text,label\na,pos\nb,other\n");
    let err = prepare_classification_files(&files, &options, &tok, &prepare_options(Some(&cache))).unwrap_err();
    assert_eq!(unknown_label(&err).3, "other");
}

#[test]
fn a_file_alone_as_a_test_set_is_all_test_and_strict_against_the_given_labels() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let file = write(dir.path(), "held_out.csv", b"text,label\na,pos\nb,neg\nc,pos\n");
    let options = ClassificationOptions {
        labels: Some(LabelSpec::new(&["neg", "pos"]).unwrap()),
        unknown_labels: UnknownLabels::Error,
        ..ClassificationOptions::default()
    };
    let prepare = PrepareOptions { sample_ratio: 0.5, ..prepare_options(None) };
    let ds = prepare_classification_test(&file, &options, &tok, &prepare).unwrap();
    assert_eq!((ds.train(), ds.validation(), ds.test()), (&[][..], &[][..], &[0, 1, 2][..]));
    assert_eq!(ds.sources().test, SplitSource::Given(file.clone()));
    assert_eq!((ds.sources().train.clone(), ds.data().files()[0].split), (SplitSource::Absent, SplitName::Test));
    let other = write(dir.path(), "other.csv", b"text,label\na,pos\nb,meh\n");
    let err = prepare_classification_test(&other, &options, &tok, &prepare).unwrap_err();
    let (path, row, _, label, known) = unknown_label(&err);
    assert_eq!((path, row, label, known), (other.as_path(), Some(3), "meh", &["neg".to_owned(), "pos".to_owned()][..]));

    let conll = write(dir.path(), "held_out.conll", b"John B-PER\nlives O\n\nin O\n");
    let options = NerOptions {
        labels: Some(NerLabels::new(&["O", "B-PER", "I-PER"]).unwrap()),
        unknown_labels: UnknownLabels::Error,
        ..NerOptions::default()
    };
    let ds = prepare_ner_test(&conll, &options, &tok, &prepare).unwrap();
    assert_eq!((ds.train().len(), ds.test()), (0, &[0, 1][..]));
    assert_eq!(ds.label_names(), ["O", "B-PER", "I-PER"]);
}
