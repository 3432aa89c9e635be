//! The processed-data cache: hits, stale and corrupt files, atomic rebuilds.

mod common;

use std::path::{Path, PathBuf};

use common::{tokenizer, write};
use datasets::{
    prepare_classification, prepare_ner, Cache, CacheStatus, ClassificationOptions, DatasetError, EncodeOptions,
    KeyBuilder, NerOptions, PrepareOptions, TestSize,
};

const CSV: &str = "review,sentiment\nI loved it,positive\nBad film,negative\nGreat,positive\n\
Not good,negative\nThe movie was great,positive\n";

fn options(cache: &Path) -> PrepareOptions {
    PrepareOptions { test_size: TestSize::Count(2), cache_dir: Some(cache.to_path_buf()), ..PrepareOptions::default() }
}

fn cache_file(cache: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "exactly one cache file, no temp files left: {files:?}");
    files.into_iter().next().unwrap()
}

#[test]
fn hit_after_build_and_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "r.csv", CSV.as_bytes());
    let cache = dir.path().join("processed");
    let tok = tokenizer();
    let first = prepare_classification(&input, &ClassificationOptions::default(), &tok, &options(&cache)).unwrap();
    assert_eq!(first.cache().status, CacheStatus::Missing);
    assert_eq!(first.cache().write_error, None);
    let path = cache_file(&cache);
    assert_eq!(first.cache().path.as_deref(), Some(path.as_path()));
    let second = prepare_classification(&input, &ClassificationOptions::default(), &tok, &options(&cache)).unwrap();
    assert_eq!(second.cache().status, CacheStatus::Hit);
    assert_eq!(second.data(), first.data());
    assert_eq!((second.train().to_vec(), second.test().to_vec()), (first.train().to_vec(), first.test().to_vec()));
    assert_eq!(first.examples().len(), 5);
    assert_eq!((first.train().len(), first.test().len()), (3, 2));
    assert_eq!(second.cache().to_string(), format!("cache hit: {}", path.display()));
}

#[test]
fn stale_when_input_options_or_tokenizer_change() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "r.csv", CSV.as_bytes());
    let cache = dir.path().join("processed");
    let tok = tokenizer();
    let opts = ClassificationOptions::default();
    prepare_classification(&input, &opts, &tok, &options(&cache)).unwrap();

    // Same file name, other bytes.
    write(dir.path(), "r.csv", format!("{CSV}Loved it,positive\n").as_bytes());
    let changed = prepare_classification(&input, &opts, &tok, &options(&cache)).unwrap();
    assert!(matches!(changed.cache().status, CacheStatus::Stale(_)), "{}", changed.cache());
    assert_eq!(changed.examples().len(), 6);
    let again = prepare_classification(&input, &opts, &tok, &options(&cache)).unwrap();
    assert_eq!(again.cache().status, CacheStatus::Hit);

    // Other encode options.
    let mut shorter = options(&cache);
    shorter.encode = EncodeOptions { max_length: 3, ..EncodeOptions::default() };
    let result = prepare_classification(&input, &opts, &tok, &shorter).unwrap();
    assert!(matches!(result.cache().status, CacheStatus::Stale(_)));
    assert!(result.examples().iter().all(|e| e.input_ids.len() <= 3));

    // Other loader options.
    let raw = ClassificationOptions { clean: false, ..ClassificationOptions::default() };
    let result = prepare_classification(&input, &raw, &tok, &options(&cache)).unwrap();
    assert!(matches!(result.cache().status, CacheStatus::Stale(_)));

    // Another tokenizer configuration (its JSON differs).
    let mut other = tokenizer();
    other.with_truncation(Some(tokenizers::TruncationParams::default())).unwrap();
    let result = prepare_classification(&input, &raw, &other, &options(&cache)).unwrap();
    assert!(matches!(result.cache().status, CacheStatus::Stale(_)));
    cache_file(&cache);
}

#[test]
fn corrupt_or_foreign_cache_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "r.csv", CSV.as_bytes());
    let cache = dir.path().join("processed");
    let tok = tokenizer();
    let opts = ClassificationOptions::default();
    let fresh = prepare_classification(&input, &opts, &tok, &options(&cache)).unwrap();
    let path = cache_file(&cache);
    let good = std::fs::read(&path).unwrap();

    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("truncated payload", good[..good.len() - 7].to_vec()),
        ("truncated header", good[..20].to_vec()),
        ("empty", Vec::new()),
        ("flipped payload byte", {
            let mut b = good.clone();
            let last = b.len() - 1;
            b[last] ^= 0x55;
            b
        }),
        (
            "not a cache file",
            b"hello, world: not bincode at all, not even close........................................................"
                .to_vec(),
        ),
    ];
    for (what, bytes) in damages {
        std::fs::write(&path, &bytes).unwrap();
        let result = prepare_classification(&input, &opts, &tok, &options(&cache)).unwrap();
        assert!(matches!(result.cache().status, CacheStatus::Corrupt(_)), "{what}: {}", result.cache());
        assert_eq!(result.data(), fresh.data(), "{what}");
        assert_eq!(std::fs::read(&path).unwrap(), good, "{what}: rewritten");
    }

    // Another format version is stale, not corrupt.
    let mut old = good.clone();
    old[8..12].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&path, &old).unwrap();
    let result = prepare_classification(&input, &opts, &tok, &options(&cache)).unwrap();
    match &result.cache().status {
        CacheStatus::Stale(why) => assert!(why.contains("format version 0"), "{why}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn disabled_cache_and_unwritable_cache_dir() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "r.csv", CSV.as_bytes());
    let tok = tokenizer();
    let opts = ClassificationOptions::default();
    let mut no_cache = options(dir.path());
    no_cache.cache_dir = None;
    let result = prepare_classification(&input, &opts, &tok, &no_cache).unwrap();
    assert_eq!(result.cache().status, CacheStatus::Disabled);

    // The cache "directory" is a file: the data is still returned, the write error reported.
    let blocker = write(dir.path(), "blocker", b"x");
    let result = prepare_classification(&input, &opts, &tok, &options(&blocker)).unwrap();
    assert_eq!(result.cache().status, CacheStatus::Missing);
    assert!(result.cache().write_error.is_some());
    assert_eq!(result.examples().len(), 5);
}

#[test]
fn build_errors_propagate_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().join("c"));
    let key = KeyBuilder::new("test").finish();
    let err =
        cache.load_or_build::<Vec<u32>, _>("x", key, || Err(DatasetError::InvalidOption("boom".into()))).unwrap_err();
    assert!(err.to_string().contains("boom"));
    assert!(!cache.path_for("x").exists());
    let (value, report) = cache.load_or_build("x", key, || Ok(vec![1u32, 2, 3])).unwrap();
    assert_eq!((value, report.status), (vec![1, 2, 3], CacheStatus::Missing));
    let (value, report) = cache.load_or_build::<Vec<u32>, _>("x", key, || panic!("must not rebuild")).unwrap();
    assert_eq!((value, report.status), (vec![1, 2, 3], CacheStatus::Hit));
    // A key over other parts differs.
    let mut other = KeyBuilder::new("test");
    other.bytes(b"more");
    assert_ne!(other.finish(), key);
}

#[test]
fn ner_dataset_is_cached_too() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "n.csv",
        b"Sentence #,Word,Tag\nSentence: 1,John,B-per\n,lives,O\nSentence: 2,Paris,B-geo\nSentence: 3,Berlin,B-geo\n",
    );
    let cache = dir.path().join("processed");
    let tok = tokenizer();
    let mut prep = options(&cache);
    prep.test_size = TestSize::Count(1);
    let first = prepare_ner(&input, &NerOptions::default(), &tok, &prep).unwrap();
    let second = prepare_ner(&input, &NerOptions::default(), &tok, &prep).unwrap();
    assert_eq!((&first.cache().status, &second.cache().status), (&CacheStatus::Missing, &CacheStatus::Hit));
    assert_eq!(first.data(), second.data());
    assert_eq!(first.label_names(), ["O", "B-geo", "I-geo", "B-per", "I-per"]);
    assert_eq!(first.data().dropped().len(), 2);
}

#[test]
fn partial_files_of_killed_writers_are_removed_but_not_those_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "r.csv", CSV.as_bytes());
    let cache = dir.path().join("processed");
    std::fs::create_dir_all(&cache).unwrap();
    // A partial file two hours old (a killed writer's), one just started (another process's), and a user's file.
    let old = write(&cache, ".partial-old", b"half an entry");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(two_hours_ago).unwrap();
    let fresh = write(&cache, ".partial-fresh", b"being written");
    let other = write(&cache, "notes.txt", b"not ours");
    let old_but_not_partial = write(&cache, "old-notes.txt", b"not ours either");
    std::fs::File::options().write(true).open(&old_but_not_partial).unwrap().set_modified(two_hours_ago).unwrap();

    let prepared = prepare_classification(&input, &ClassificationOptions::default(), &tokenizer(), &options(&cache));
    assert_eq!(prepared.unwrap().cache().write_error, None);
    assert!(!old.exists(), "the stale partial file is removed");
    assert!(fresh.exists() && other.exists() && old_but_not_partial.exists(), "nothing else is touched");
}
