//! Token classification (NER) data: the Kaggle/GMB table layout and CoNLL text.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::conll::parse_conll;
use crate::error::Result;
use crate::format::{read_text, FileFormat, TextEncoding};
use crate::labels::NerLabels;
use crate::report::{DropReason, DropReport};
use crate::table::{for_each_row, Columns, TableSource};

/// How to read an NER file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NerOptions {
    /// Column with the sentence id, filled on each sentence's first row (default `Sentence #`).
    pub sentence_column: String,
    /// Column with the word (default `Word`).
    pub word_column: String,
    /// Column with the IOB tag (default `Tag`).
    pub tag_column: String,
    /// Column with the part-of-speech tag (default `POS`), read only when `keep_pos` is set.
    pub pos_column: String,
    /// Whether to keep part-of-speech tags (when the column exists).
    pub keep_pos: bool,
    /// The tag set; derived from the data when `None` (see [`NerLabels::derive`]).
    pub labels: Option<NerLabels>,
    /// Worksheet (XLSX); the first sheet when `None`.
    pub sheet: Option<String>,
    /// Encoding of CSV/CoNLL input.
    pub encoding: TextEncoding,
    /// Format; from the file extension when `None`.
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
            labels: None,
            sheet: None,
            encoding: TextEncoding::Auto,
            format: None,
        }
    }
}

/// One sentence: its words and their label ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NerSentence {
    /// The sentence id (`Sentence: 12`, or `line N` for CoNLL input).
    pub id: String,
    /// The words.
    pub words: Vec<String>,
    /// The label id of each word (see [`NerData::labels`]).
    pub tags: Vec<u32>,
    /// Part-of-speech tags, when asked for and present.
    pub pos: Option<Vec<String>>,
}

/// A loaded NER file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NerData {
    /// Kept sentences, in order of first appearance in the file.
    pub sentences: Vec<NerSentence>,
    /// The tag set; label ids index it.
    pub labels: NerLabels,
    /// Token rows read (kept + dropped).
    pub tokens_read: u64,
    /// Tokens dropped before grouping (missing word, tag or sentence id).
    pub dropped_tokens: DropReport,
    /// Sentences dropped (holding a tag outside the label set).
    pub dropped_sentences: DropReport,
}

impl NerData {
    /// Total number of words over all kept sentences.
    pub fn token_count(&self) -> usize {
        self.sentences.iter().map(|s| s.words.len()).sum()
    }
}

/// A sentence being collected, tags still as interned strings.
struct RawSentence {
    id: String,
    words: Vec<String>,
    tags: Vec<u32>,
    pos: Option<Vec<String>>,
}

/// Groups token rows into sentences (by sentence key, in order of first appearance, as
/// pandas' `groupby` does but without sorting the keys) and interns the tags.
pub(crate) struct SentenceBuilder {
    sentences: Vec<RawSentence>,
    by_key: HashMap<String, usize>,
    tag_names: Vec<String>,
    tag_ids: HashMap<String, u32>,
    keep_pos: bool,
    pub(crate) tokens_read: u64,
    pub(crate) dropped_tokens: DropReport,
}

impl SentenceBuilder {
    pub(crate) fn new(keep_pos: bool) -> Self {
        Self {
            sentences: Vec::new(),
            by_key: HashMap::new(),
            tag_names: Vec::new(),
            tag_ids: HashMap::new(),
            keep_pos,
            tokens_read: 0,
            dropped_tokens: DropReport::new("tokens"),
        }
    }

    pub(crate) fn intern(&mut self, tag: &str) -> u32 {
        if let Some(&id) = self.tag_ids.get(tag) {
            return id;
        }
        let id = u32::try_from(self.tag_names.len()).unwrap_or(u32::MAX);
        self.tag_names.push(tag.to_owned());
        self.tag_ids.insert(tag.to_owned(), id);
        id
    }

    /// Index of the sentence with this key, created if new.
    pub(crate) fn sentence(&mut self, key: &str) -> usize {
        if let Some(&i) = self.by_key.get(key) {
            return i;
        }
        let i = self.sentences.len();
        self.sentences.push(RawSentence {
            id: key.to_owned(),
            words: Vec::new(),
            tags: Vec::new(),
            pos: self.keep_pos.then(Vec::new),
        });
        self.by_key.insert(key.to_owned(), i);
        i
    }

    /// Starts a sentence that no later key can join (CoNLL input).
    pub(crate) fn new_sentence(&mut self, id: String) -> usize {
        let i = self.sentences.len();
        self.sentences.push(RawSentence { id, words: Vec::new(), tags: Vec::new(), pos: self.keep_pos.then(Vec::new) });
        i
    }

    pub(crate) fn push(&mut self, sentence: usize, word: &str, tag: &str, pos: Option<&str>) {
        let tag = self.intern(tag.trim());
        self.push_interned(sentence, word.to_owned(), tag, pos.map(str::to_owned));
    }

    pub(crate) fn push_interned(&mut self, sentence: usize, word: String, tag: u32, pos: Option<String>) {
        if let Some(s) = self.sentences.get_mut(sentence) {
            s.words.push(word);
            s.tags.push(tag);
            if let Some(p) = s.pos.as_mut() {
                p.push(pos.unwrap_or_default());
            }
        }
    }

    /// Resolves the tags against the label set (given or derived) and drops sentences with
    /// unknown tags.
    pub(crate) fn finish(self, labels: Option<NerLabels>) -> NerData {
        let labels = labels.unwrap_or_else(|| NerLabels::derive(self.tag_names.iter().map(String::as_str)));
        let resolved: Vec<Option<u32>> = self.tag_names.iter().map(|t| labels.id(t)).collect();
        let mut dropped_sentences = DropReport::new("sentences");
        let mut sentences = Vec::with_capacity(self.sentences.len());
        for raw in self.sentences {
            if raw.words.is_empty() {
                continue;
            }
            let tags: Option<Vec<u32>> =
                raw.tags.iter().map(|&t| resolved.get(t as usize).copied().flatten()).collect();
            match tags {
                Some(tags) => sentences.push(NerSentence { id: raw.id, words: raw.words, tags, pos: raw.pos }),
                None => {
                    dropped_sentences.add(DropReason::UnknownTag);
                    for &t in &raw.tags {
                        if resolved.get(t as usize).copied().flatten().is_none() {
                            if let Some(name) = self.tag_names.get(t as usize) {
                                dropped_sentences.note_value(name);
                            }
                        }
                    }
                }
            }
        }
        NerData {
            sentences,
            labels,
            tokens_read: self.tokens_read,
            dropped_tokens: self.dropped_tokens,
            dropped_sentences,
        }
    }
}

/// Loads an NER file: the Kaggle layout (`Sentence #`, `Word`, `Tag`, optional `POS`) from
/// XLSX, CSV or CSV.gz, or CoNLL text (`token<TAB>tag` lines, blank lines between sentences).
///
/// `Sentence #` is forward-filled; tokens with a missing word or tag are dropped (as pandas'
/// `dropna` does, but the word `None` and error cells like `#NAME?` are kept as words);
/// sentences holding a tag outside the label set are dropped and counted.
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
        None => FileFormat::from_path(path)?,
    };
    let mut builder = SentenceBuilder::new(options.keep_pos);
    match format {
        FileFormat::Conll { gzip } => {
            let text = read_text(path, gzip, options.encoding)?;
            parse_conll(path, &text, &mut builder)?;
        }
        FileFormat::Xlsx | FileFormat::Csv { .. } => {
            read_table(path, format, options, &mut builder)?;
        }
    }
    let data = builder.finish(options.labels.clone());
    for report in [&data.dropped_tokens, &data.dropped_sentences] {
        if !report.is_empty() {
            tracing::warn!(path = %path.display(), "{report}");
        }
    }
    tracing::info!(
        path = %path.display(),
        sentences = data.sentences.len(),
        tags = data.labels.len(),
        "loaded NER data"
    );
    Ok(data)
}

fn read_table(path: &Path, format: FileFormat, options: &NerOptions, builder: &mut SentenceBuilder) -> Result<()> {
    let source = TableSource { path, format, sheet: options.sheet.as_deref(), encoding: options.encoding };
    let required = [options.sentence_column.as_str(), options.word_column.as_str(), options.tag_column.as_str()];
    let optional_pos = [options.pos_column.as_str()];
    let optional: &[&str] = if options.keep_pos { &optional_pos } else { &[] };
    let mut current: Option<usize> = None;
    for_each_row(source, Columns { required: &required, optional }, |_row, cells| {
        builder.tokens_read += 1;
        let cell = |i: usize| cells.get(i).and_then(|c| c.as_deref());
        if let Some(key) = cell(0) {
            current = Some(builder.sentence(key));
        }
        let reason = match (current, cell(1), cell(2)) {
            (Some(sentence), Some(_), Some(tag)) => {
                let tag = builder.intern(tag.trim());
                let pos = cell(3).map(str::to_owned);
                let word = cells.get_mut(1).and_then(Option::take).unwrap_or_default();
                builder.push_interned(sentence, word.into_owned(), tag, pos);
                return Ok(());
            }
            (_, None, _) => &options.word_column,
            (_, _, None) => &options.tag_column,
            (None, _, _) => &options.sentence_column,
        };
        builder.dropped_tokens.add(DropReason::Missing(reason.clone()));
        Ok(())
    })?;
    Ok(())
}
