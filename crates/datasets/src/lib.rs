//! Data for the BERT multi-task tool: sentence classification (IMDB-style reviews, or the user's own labelled
//! texts) and NER (GMB/Kaggle, CoNLL or Hugging Face JSON-lines data), reimplementing the notebook's data pipeline.
//!
//! - **Loading**: classification from CSV, TSV, JSON lines (each optionally gzip-compressed) and XLSX (calamine,
//!   streamed); NER from the Kaggle table layout (XLSX, CSV), CoNLL text and JSON lines (`tokens`, `ner_tags`);
//!   UTF-8 or Windows-1252; configurable columns; classes derived from the file or given; IOB1 tags read as IOB2;
//!   every dropped row counted by reason ([`load_classification`], [`load_ner`], [`DropReport`]).
//! - **Cleaning**: the notebook's `clean_text` (Beautiful Soup `html.parser` text, then two
//!   regular expressions), reproduced exactly ([`clean_text`], [`html_to_text`]).
//! - **Tokenization**: truncation without padding; NER labels aligned to sub-tokens by word
//!   ids, with the token-to-word map kept ([`encode_classification`], [`encode_ner`]).
//! - **Splits and sampling**, seeded and independent of the thread count
//!   ([`train_test_split`], [`sample_indices`]).
//! - **Cache** of tokenized datasets, keyed by the input bytes, options and tokenizer
//!   ([`Cache`], [`prepare_classification`], [`prepare_ner`]).
//! - **Given splits**: the user's train, validation and test files, the labels taken from the training file and
//!   the other files read strictly against them, with where each split came from and how many validation and test
//!   examples also occur in training ([`prepare_classification_files`], [`prepare_ner_files`],
//!   [`PreparedDataset::sources`], [`PreparedDataset::leakage`]); a labelled file alone as a test set, to score a
//!   trained model ([`prepare_classification_test`], [`prepare_ner_test`]).
//! - **Batches**: length buckets, padding to the longest sequence in the batch, and `tch`
//!   tensors ([`BucketSampler`], [`pad_batch`], `PaddedBatch::to_tensors` with the default
//!   `tch` feature).
//!
//! ```
//! use datasets::{clean_text, load_classification, ClassificationOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("reviews.csv");
//! std::fs::write(
//!     &path,
//!     "review,sentiment\n\"Loved it.<br /><br />10/10\",positive\nMeh &amp; dull,negative\nNo label,\n",
//! )?;
//! let data = load_classification(&path, &ClassificationOptions::default())?;
//! assert_eq!(data.examples[0].text, "Loved it.1010");
//! assert_eq!((data.examples[1].text.as_str(), data.examples[1].label), ("Meh dull", 0));
//! assert_eq!(data.dropped.to_string(), "dropped 1 rows: 1 missing sentiment");
//! assert_eq!(clean_text("a&nbsp;<i>b</i>"), "a b");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod batch;
mod cache;
mod classification;
mod columns;
mod conll;
mod encode;
mod error;
mod format;
mod jsonl;
mod kaggle;
mod labels;
mod ner;
mod prepare;
mod report;
mod sentences;
mod split;
mod table;
#[cfg(feature = "tch")]
mod tensor;

pub use batch::{lengths, pad_batch, BatchLabels, BatchRow, BucketSampler, PaddedBatch};
pub use cache::{Cache, CacheKey, CacheReport, CacheStatus, KeyBuilder, CACHE_FORMAT_VERSION};
pub use classification::{
    load_classification, ClassificationData, ClassificationExample, ClassificationOptions, LabelSpec,
};
pub use encode::{
    align_labels, encode_classification, encode_ner, pad_id, rows, windows, word_starts, EncodeOptions, EncodeStats,
    Encoded, Row, Target, TokenTargets, Window, IGNORE_INDEX,
};
pub use error::{DatasetError, Location, Result};
pub use format::{FileFormat, TextEncoding};
pub use labels::{NerLabels, UnknownLabels};
pub use ner::{load_ner, NerData, NerOptions};
pub use prepare::{
    prepare_classification, prepare_classification_files, prepare_classification_test, prepare_ner, prepare_ner_files,
    prepare_ner_test, FileReport, Leakage, PrepareOptions, PreparedDataset, ProcessedDataset, SplitFiles, SplitName,
    SplitSource, SplitSources,
};
pub use report::{DropReason, DropReport};
pub use sentences::NerSentence;
pub use split::{sample_indices, seeded_rng, shuffle, train_test_split, Split, TestSize};
pub use table::read_table;
#[cfg(feature = "tch")]
pub use tensor::TensorBatch;
pub use text_prep::{clean_text, html_to_text, is_py_whitespace, normalize_chars, MarkupRejected};
