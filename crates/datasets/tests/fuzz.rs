//! Property tests: whatever the bytes of an input file (random, or a valid file cut short or with bytes
//! overwritten), loading returns data or an error; it never panics or hangs.

mod common;

use common::{write, write_gz, write_xlsx};
use datasets::{load_classification, load_ner, ClassificationOptions, NerOptions};
use proptest::prelude::*;
use std::path::Path;

const EXTENSIONS: [&str; 5] = ["csv", "csv.gz", "xlsx", "conll", "txt"];

/// Both loaders on `bytes` saved as `name`; only a panic fails (proptest reports it).
fn load_both(dir: &Path, name: &str, bytes: &[u8]) {
    let path = write(dir, name, bytes);
    let _ = load_classification(&path, &ClassificationOptions::default());
    let _ = load_ner(&path, &NerOptions::default());
}

/// Valid files of every format, as bytes, with their file names.
fn valid_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let reviews = "review,sentiment\n\"Great <b>film</b>\",positive\nBad,negative\n\"Zürich, ok\",positive\n";
    let ner = "Sentence #,Word,POS,Tag\nSentence: 1,John,NNP,B-per\n,lives,VBZ,O\nSentence: 2,Paris,NNP,B-geo\n";
    let rows: Vec<Vec<Option<&str>>> =
        vec![vec![Some("review"), Some("sentiment")], vec![Some("Great"), Some("positive")], vec![Some("Bad"), None]];
    let xlsx = write_xlsx(dir, "valid.xlsx", "Sheet1", &rows);
    let gz = write_gz(dir, "valid.csv.gz", reviews.as_bytes());
    vec![
        ("reviews.csv".into(), reviews.as_bytes().to_vec()),
        ("ner.csv".into(), ner.as_bytes().to_vec()),
        ("ner.conll".into(), b"John\tB-PER\nlives\tO\n\nParis\tB-LOC\n".to_vec()),
        ("valid.xlsx".into(), std::fs::read(xlsx).expect("xlsx")),
        ("valid.csv.gz".into(), std::fs::read(gz).expect("gz")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_in_any_format_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        extension in 0..EXTENSIONS.len(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        load_both(dir.path(), &format!("input.{}", EXTENSIONS[extension]), &bytes);
    }

    #[test]
    fn valid_files_cut_short_or_overwritten_never_panic(
        which in 0..5usize,
        cut in 0.0..1.0f64,
        edits in proptest::collection::vec((0.0..1.0f64, any::<u8>()), 0..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (name, mut bytes) = valid_files(dir.path()).swap_remove(which);
        for (at, byte) in edits {
            let index = ((bytes.len() as f64) * at) as usize;
            if let Some(slot) = bytes.get_mut(index) {
                *slot = byte;
            }
        }
        let keep = ((bytes.len() as f64) * cut) as usize;
        load_both(dir.path(), &format!("damaged-{name}"), &bytes[..keep]);
        load_both(dir.path(), &format!("edited-{name}"), &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// A cache entry with any bytes (random, or a valid entry cut or overwritten, its checksum kept or not) is
    /// served only when intact; anything else is reported and rebuilt, never a panic and never wrong data.
    #[test]
    fn any_cache_file_is_served_intact_or_rebuilt(
        random in proptest::collection::vec(any::<u8>(), 0..512),
        cut in 0.0..1.0f64,
        edits in proptest::collection::vec((0.0..1.0f64, any::<u8>()), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cache = datasets::Cache::new(dir.path());
        let key = datasets::KeyBuilder::new("fuzz").bytes(b"input").finish();
        let value: Vec<(String, u32)> = (0..20).map(|i| (format!("example {i}"), i)).collect();
        let (_, report) = cache.load_or_build("entry", key, || Ok(value.clone())).unwrap();
        let path = report.path.unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut damaged = good.clone();
        for (at, byte) in edits {
            let index = ((damaged.len() as f64) * at) as usize;
            let last = damaged.len() - 1;
            damaged[index.min(last)] = byte;
        }
        damaged.truncate(((damaged.len() as f64) * cut) as usize + 1);
        for bytes in [random, damaged] {
            std::fs::write(&path, &bytes).unwrap();
            let (served, _) = cache.load_or_build("entry", key, || Ok(value.clone())).unwrap();
            prop_assert_eq!(&served, &value);
        }
    }
}
