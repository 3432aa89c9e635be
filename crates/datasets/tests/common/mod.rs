//! Helpers shared by the integration tests: a tiny BERT-style tokenizer and file writers.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::Tokenizer;

/// The tiny vocabulary: specials first ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4), then
/// whole words and WordPiece pieces, so that e.g. `johnson` = `john ##son` and
/// `unbelievable` = `un ##believ ##able`.
pub const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "great", "bad", "john", "##son", "lives",
    "in", "new", "york", "paris", ".", ",", "!", "un", "##believ", "##able", "cafe", "a", "film", "not", "good", "i",
    "loved", "it", "berlin", "mr", "##s",
];

pub fn id(token: &str) -> u32 {
    VOCAB.iter().position(|t| *t == token).expect("token in test vocab") as u32
}

/// A BERT-style tokenizer (BertNormalizer lowercasing, BertPreTokenizer, WordPiece,
/// `[CLS] ... [SEP]` post-processing) over [`VOCAB`].
pub fn tokenizer() -> Tokenizer {
    // The vocabulary goes through a vocab.txt, as a BERT checkpoint's does.
    let dir = tempfile::tempdir().expect("tempdir");
    let vocab_path = dir.path().join("vocab.txt");
    std::fs::write(&vocab_path, VOCAB.join("\n") + "\n").expect("write vocab");
    let model = WordPiece::from_file(vocab_path.to_str().expect("utf-8 path"))
        .unk_token("[UNK]".into())
        .build()
        .expect("wordpiece");
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, true))).expect("normalizer");
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer
        .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), id("[SEP]")), ("[CLS]".into(), id("[CLS]")))));
    tokenizer
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

pub fn write_gz(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("create");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip finish");
    path
}

/// Writes an XLSX workbook with one sheet holding `rows` (all strings; `None` = no cell).
pub fn write_xlsx(dir: &Path, name: &str, sheet: &str, rows: &[Vec<Option<&str>>]) -> PathBuf {
    let path = dir.join(name);
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let worksheet = workbook.add_worksheet();
    worksheet.set_name(sheet).expect("sheet name");
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if let Some(text) = cell {
                worksheet.write_string(r as u32, c as u16, *text).expect("write cell");
            }
        }
    }
    workbook.save(&path).expect("save xlsx");
    path
}
