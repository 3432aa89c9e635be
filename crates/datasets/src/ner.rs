//! Token classification (NER) data: options, the loaded data, and the dispatch to the readers of each layout
//! (the Kaggle/GMB table, CoNLL text, JSON lines), which all feed [`crate::sentences`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::conll::parse_conll;
use crate::error::{Location, Result};
use crate::format::{read_text, FileFormat, TextEncoding};
use crate::jsonl::{read_ner, NerFields};
use crate::kaggle::{read_kaggle, KaggleColumns};
use crate::labels::{NerLabels, UnknownLabels};
use crate::report::DropReport;
use crate::sentences::{NerSentence, SentenceBuilder};
use crate::table::TableSource;

/// How to read an NER file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NerOptions {
    /// Kaggle layout: column with the sentence id, filled on each sentence's first row (default `Sentence #`).
    pub sentence_column: String,
    /// Kaggle layout: column with the word (default `Word`).
    pub word_column: String,
    /// Kaggle layout: column with the IOB tag (default `Tag`).
    pub tag_column: String,
    /// Kaggle layout: column with the part-of-speech tag (default `POS`), read only when `keep_pos` is set.
    pub pos_column: String,
    /// Whether to keep part-of-speech tags (the Kaggle column, or CoNLL's second column when there are more than
    /// two).
    pub keep_pos: bool,
    /// JSON lines: the field with the list of words (default `tokens`).
    pub tokens_field: String,
    /// JSON lines: the field with the list of tags (default `ner_tags`), tag strings or integer ids into
    /// `label_names`.
    pub tags_field: String,
    /// JSON lines: the tag names integer tags index (a Hugging Face `ClassLabel`'s names, id = position). Integer
    /// tags without them are an error.
    pub label_names: Option<Vec<String>>,
    /// The tag set; derived from the data when `None` (see [`NerLabels::derive`]).
    pub labels: Option<NerLabels>,
    /// What to do with a sentence holding a tag outside the tag set (default: drop it and count it).
    pub unknown_labels: UnknownLabels,
    /// Worksheet (XLSX); the first sheet when `None`.
    pub sheet: Option<String>,
    /// Encoding of CSV, TSV, CoNLL and JSON-lines input.
    pub encoding: TextEncoding,
    /// Format; from the file extension when `None` (see [`FileFormat::for_ner`]).
    pub format: Option<FileFormat>,
}

impl Default for NerOptions {
    fn default() -> Self {
        Self {
            sentence_column: "Sentence #".into(),
            word_column: "Word".into(),
            tag_column: "Tag".into(),
            pos_column: "POS".into(),
            keep_pos: false,
            tokens_field: "tokens".into(),
            tags_field: "ner_tags".into(),
            label_names: None,
            labels: None,
            unknown_labels: UnknownLabels::Drop,
            sheet: None,
            encoding: TextEncoding::Auto,
            format: None,
        }
    }
}

/// A loaded NER file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NerData {
    /// Kept sentences, in order of first appearance in the file.
    pub sentences: Vec<NerSentence>,
    /// The tag set; label ids index it.
    pub labels: NerLabels,
    /// Tokens read (kept + dropped): table rows, CoNLL token lines, or JSON-lines list items.
    pub tokens_read: u64,
    /// Tokens dropped before grouping (missing word, tag or sentence id).
    pub dropped_tokens: DropReport,
    /// Sentences dropped (holding a tag outside the label set; an empty JSON-lines sentence).
    pub dropped_sentences: DropReport,
    /// `I-X` tags that started an entity (IOB1) and were read as `B-X` (IOB2).
    pub iob1_tags_converted: u64,
}

impl NerData {
    /// Total number of words over all kept sentences.
    pub fn token_count(&self) -> usize {
        self.sentences.iter().map(|s| s.words.len()).sum()
    }
}

/// Loads an NER file: the Kaggle layout (`Sentence #`, `Word`, `Tag`, optional `POS`) from XLSX, CSV or CSV.gz;
/// CoNLL text (the token first, the tag in the last column, tab or whitespace separated, `-DOCSTART-` lines
/// skipped, blank lines between sentences); or JSON lines with `tokens` and `ner_tags` lists (tag strings, or
/// integer ids with [`NerOptions::label_names`]).
///
/// Kaggle layout: `Sentence #` is forward-filled; tokens with a missing word or tag are dropped (as pandas'
/// `dropna` does, but the word `None` and error cells like `#NAME?` are kept as words).
/// Every layout: IOB1 tags are read as IOB2 (an `I-X` that starts an entity becomes `B-X`; counted in
/// [`NerData::iob1_tags_converted`], with a warning); sentences holding a tag outside the label set are dropped
/// and counted, or are an error (see [`NerOptions::unknown_labels`]).
///
/// ```no_run
/// use datasets::{load_ner, NerOptions};
/// let data = load_ner("ner_dataset.csv.gz", &NerOptions::default())?;
/// println!("{} sentences, tags {:?}; {}", data.sentences.len(), data.labels.tags(), data.dropped_sentences);
/// # Ok::<(), datasets::DatasetError>(())
/// ```
pub fn load_ner(path: impl AsRef<Path>, options: &NerOptions) -> Result<NerData> {
    let path = path.as_ref();
    let format = match options.format {
        Some(f) => f,
        None => FileFormat::for_ner(path)?,
    };
    let mut builder = SentenceBuilder::new(options.keep_pos, options.unknown_labels.is_strict());
    let file = Location::file(path);
    let grouped = match format {
        FileFormat::Conll { gzip } => {
            let text = read_text(path, gzip, options.encoding)?;
            parse_conll(path, &text, &mut builder)?;
            builder.finish(options.labels.clone(), &options.unknown_labels, |line| file.clone().with_line(line))?
        }
        FileFormat::JsonLines { gzip } => {
            let text = read_text(path, gzip, options.encoding)?;
            let fields = NerFields {
                tokens: &options.tokens_field,
                tags: &options.tags_field,
                label_names: options.label_names.as_deref(),
            };
            read_ner(path, &text, fields, &mut builder)?;
            builder.finish(options.labels.clone(), &options.unknown_labels, |line| file.clone().with_line(line))?
        }
        FileFormat::Xlsx | FileFormat::Csv { .. } | FileFormat::Tsv { .. } => {
            let source = TableSource { path, format, sheet: options.sheet.as_deref(), encoding: options.encoding };
            let columns = KaggleColumns {
                sentence: &options.sentence_column,
                word: &options.word_column,
                tag: &options.tag_column,
                pos: options.keep_pos.then_some(options.pos_column.as_str()),
            };
            read_kaggle(source, columns, &mut builder)?;
            let table = match &options.sheet {
                Some(sheet) if format == FileFormat::Xlsx => file.clone().with_sheet(sheet),
                _ => file.clone(),
            };
            builder.finish(options.labels.clone(), &options.unknown_labels, |row| table.clone().with_row(row))?
        }
    };
    let data = NerData {
        sentences: grouped.sentences,
        labels: grouped.labels,
        tokens_read: grouped.tokens_read,
        dropped_tokens: grouped.dropped_tokens,
        dropped_sentences: grouped.dropped_sentences,
        iob1_tags_converted: grouped.iob1_tags_converted,
    };
    for report in [&data.dropped_tokens, &data.dropped_sentences] {
        if !report.is_empty() {
            tracing::warn!(path = %path.display(), "{report}");
        }
    }
    if data.iob1_tags_converted > 0 {
        tracing::warn!(
            path = %path.display(),
            "the tags looked like IOB1 (an I- tag starting an entity): {} tag(s) were converted to IOB2 (read as B-)",
            data.iob1_tags_converted
        );
    }
    tracing::info!(
        path = %path.display(),
        sentences = data.sentences.len(),
        tags = data.labels.len(),
        "loaded NER data"
    );
    Ok(data)
}
