//! Tokenization, and alignment of word labels to sub-tokens.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::{InputSequence, Tokenizer, TruncationParams, TruncationStrategy};

use crate::classification::ClassificationExample;
use crate::error::{DatasetError, Result};
use crate::labels::NerLabels;
use crate::sentences::NerSentence;
pub use text_prep::{rows, word_starts, Row, Window};

/// The label id that loss functions ignore (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i32 = -100;

/// How to tokenize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodeOptions {
    /// Longest sequence the model reads, special tokens included (default 512). Longer texts are truncated for
    /// classification; longer NER sentences are read in overlapping windows (see [`Window`]).
    pub max_length: usize,
    /// NER: give later sub-tokens of a word the `I-` label of its entity (`O` for `O` words)
    /// instead of [`IGNORE_INDEX`].
    pub label_all_tokens: bool,
    /// NER: tokens shared by consecutive windows of a long sentence; `None`: a quarter of `max_length`.
    pub stride: Option<usize>,
    /// NER: mark the sub-tokens of capitalized words with token type 1 ([`text_prep::case_types`]), so that a model
    /// whose vocabulary lowercases still sees which words were capitalized.
    #[serde(default)]
    pub case_types: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { max_length: 512, label_all_tokens: false, stride: None, case_types: false }
    }
}

impl EncodeOptions {
    /// The options for a model that reads `max_length` tokens at most.
    pub fn for_length(max_length: usize) -> Self {
        Self { max_length, ..Self::default() }
    }

    /// The overlap of consecutive windows: `stride`, or [`text_prep::default_stride`] of `max_length`.
    pub fn window_stride(&self) -> usize {
        self.stride.unwrap_or_else(|| text_prep::default_stride(self.max_length))
    }
}

/// [`text_prep::windows`], its error as this crate's.
pub fn windows(len: usize, max_length: usize, stride: usize) -> Result<Vec<Window>> {
    text_prep::windows(len, max_length, stride).map_err(|error| DatasetError::InvalidOption(error.to_string()))
}

/// Per-token targets of a token-classification example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTargets {
    /// One label per token: the word's label on its first sub-token, [`IGNORE_INDEX`] on special
    /// tokens and (unless `label_all_tokens`) on later sub-tokens.
    pub labels: Vec<i32>,
    /// For each token, the index of the word it belongs to (`None` for special tokens).
    pub word_ids: Vec<Option<u32>>,
    /// The gold label of every word of the sentence.
    pub word_labels: Vec<u32>,
    /// The windows the sequence is read in when it is longer than the model (empty: one row, the whole sequence).
    #[serde(default)]
    pub windows: Vec<Window>,
}

/// What an example is to be trained to predict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// One class for the whole sequence.
    Class(u32),
    /// One label per token.
    Tokens(TokenTargets),
}

/// A tokenized example, not padded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    /// Token ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// Token type (segment) ids, one per token.
    pub type_ids: Vec<u8>,
    /// The training target.
    pub target: Target,
}

impl Encoded {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// The rows the model reads for this example (see [`rows`]): one, unless it is a NER sentence read in windows.
    pub fn rows(&self) -> Vec<Row> {
        match &self.target {
            Target::Tokens(targets) => rows(self.len(), &targets.windows),
            Target::Class(_) => rows(self.len(), &[]),
        }
    }

    /// How many rows the model reads for this example: its windows, or one.
    pub fn row_count(&self) -> usize {
        match &self.target {
            Target::Tokens(targets) => targets.windows.len().max(1),
            Target::Class(_) => 1,
        }
    }

    /// The longest row the model reads for this example.
    pub fn longest_row(&self) -> usize {
        match &self.target {
            Target::Tokens(targets) if !targets.windows.is_empty() => {
                targets.windows.iter().map(|w| (w.end - w.start) as usize + 2).max().unwrap_or(0)
            }
            _ => self.len(),
        }
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// Counts gathered while tokenizing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodeStats {
    /// Examples tokenized.
    pub examples: u64,
    /// Examples cut at `max_length` (classification).
    pub truncated_examples: u64,
    /// NER: sentences longer than `max_length`, read in overlapping windows (nothing is cut off).
    #[serde(default)]
    pub windowed_examples: u64,
    /// NER: words that produced no token at all (e.g. only control characters).
    pub words_without_tokens: u64,
    /// Tokens over all examples.
    pub tokens: u64,
}

/// A copy of `tokenizer` that truncates at `max_length` (none: never truncates) and does not pad.
fn configured(tokenizer: &Tokenizer, max_length: Option<usize>) -> Result<Tokenizer> {
    let mut tokenizer = tokenizer.clone();
    let truncation = max_length.map(|max_length| TruncationParams {
        max_length,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
        ..TruncationParams::default()
    });
    tokenizer.with_truncation(truncation).map_err(|e| DatasetError::Tokenizer(e.to_string()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

fn check_length(options: &EncodeOptions) -> Result<()> {
    if options.max_length == 0 {
        return Err(DatasetError::InvalidOption("max_length must be positive".into()));
    }
    Ok(())
}

fn type_ids(encoding: &tokenizers::Encoding) -> Result<Vec<u8>> {
    encoding
        .get_type_ids()
        .iter()
        .map(|&t| u8::try_from(t).map_err(|_| DatasetError::Tokenizer(format!("type id {t} > 255"))))
        .collect()
}

/// Tokenizes classification examples (in parallel; output in input order), truncating at
/// `options.max_length`, without padding.
pub fn encode_classification(
    tokenizer: &Tokenizer,
    examples: &[ClassificationExample],
    options: &EncodeOptions,
) -> Result<(Vec<Encoded>, EncodeStats)> {
    check_length(options)?;
    let tokenizer = configured(tokenizer, Some(options.max_length))?;
    let encoded: Vec<(Encoded, bool)> = examples
        .par_iter()
        .map(|example| {
            let encoding = tokenizer
                .encode_fast(example.text.as_str(), true)
                .map_err(|e| DatasetError::Tokenizer(format!("row {}: {e}", example.row)))?;
            let truncated = !encoding.get_overflowing().is_empty();
            Ok((
                Encoded {
                    input_ids: encoding.get_ids().to_vec(),
                    type_ids: type_ids(&encoding)?,
                    target: Target::Class(example.label),
                },
                truncated,
            ))
        })
        .collect::<Result<_>>()?;
    let mut stats = EncodeStats::default();
    let mut out = Vec::with_capacity(encoded.len());
    for (e, truncated) in encoded {
        stats.examples += 1;
        stats.truncated_examples += u64::from(truncated);
        stats.tokens += e.input_ids.len() as u64;
        out.push(e);
    }
    Ok((out, stats))
}

/// Aligns word labels to tokens from the tokens' word ids: the first sub-token of a word gets
/// the word's label, special tokens get [`IGNORE_INDEX`], and later sub-tokens get
/// [`IGNORE_INDEX`], or with `label_all_tokens` the `I-` label of the word's entity.
///
/// ```
/// use datasets::{align_labels, NerLabels, IGNORE_INDEX as X};
/// let labels = NerLabels::derive(["B-per"]); // O, B-per, I-per
/// // [CLS] jo ##hn smith [SEP] for the words "John" (B-per) and "Smith" (I-per)
/// let word_ids = [None, Some(0), Some(0), Some(1), None];
/// assert_eq!(align_labels(&word_ids, &[1, 2], &labels, false), [X, 1, X, 2, X]);
/// assert_eq!(align_labels(&word_ids, &[1, 2], &labels, true), [X, 1, 2, 2, X]);
/// ```
pub fn align_labels(
    word_ids: &[Option<u32>],
    word_labels: &[u32],
    labels: &NerLabels,
    label_all_tokens: bool,
) -> Vec<i32> {
    let as_label = |id: Option<u32>| id.and_then(|i| i32::try_from(i).ok()).unwrap_or(IGNORE_INDEX);
    word_ids
        .iter()
        .zip(word_starts(word_ids))
        .map(|(&word, start)| match word {
            None => IGNORE_INDEX,
            Some(w) => {
                let gold = usize::try_from(w).ok().and_then(|i| word_labels.get(i)).copied();
                if start.is_some() {
                    as_label(gold)
                } else if label_all_tokens {
                    as_label(gold.and_then(|g| labels.inside_of(g)))
                } else {
                    IGNORE_INDEX
                }
            }
        })
        .collect()
}

/// Tokenizes NER sentences as pre-split words (in parallel; output in input order) and aligns
/// their labels (see [`align_labels`]); keeps the token-to-word map. A sentence longer than `options.max_length` is
/// kept whole and read in overlapping windows ([`windows`], sharing `options.window_stride()` tokens): no word is
/// lost.
pub fn encode_ner(
    tokenizer: &Tokenizer,
    sentences: &[NerSentence],
    labels: &NerLabels,
    options: &EncodeOptions,
) -> Result<(Vec<Encoded>, EncodeStats)> {
    check_length(options)?;
    let stride = options.window_stride();
    if options.max_length > 2 {
        windows(options.max_length + 1, options.max_length, stride)?;
    }
    let tokenizer = configured(tokenizer, None)?;
    let encoded: Vec<(Encoded, bool, u64)> = sentences
        .par_iter()
        .map(|sentence| {
            let input = InputSequence::from(sentence.words.as_slice());
            // `encode_fast` leaves word ids out; `encode` keeps them.
            let encoding = tokenizer
                .encode(input, true)
                .map_err(|e| DatasetError::Tokenizer(format!("sentence {}: {e}", sentence.id)))?;
            let word_ids = encoding.get_word_ids().to_vec();
            let n_words = sentence.words.len();
            let mut present = vec![false; n_words];
            for w in word_ids.iter().flatten() {
                if let Some(p) = usize::try_from(*w).ok().and_then(|i| present.get_mut(i)) {
                    *p = true;
                }
            }
            let missing = present.iter().filter(|p| !**p).count();
            let windows = windows(encoding.get_ids().len(), options.max_length, stride)?;
            let windowed = !windows.is_empty();
            let target = TokenTargets {
                labels: align_labels(&word_ids, &sentence.tags, labels, options.label_all_tokens),
                word_ids,
                word_labels: sentence.tags.clone(),
                windows,
            };
            let type_ids = if options.case_types {
                text_prep::case_types(&target.word_ids, &sentence.words).into_iter().map(|t| t as u8).collect()
            } else {
                type_ids(&encoding)?
            };
            Ok((
                Encoded { input_ids: encoding.get_ids().to_vec(), type_ids, target: Target::Tokens(target) },
                windowed,
                missing as u64,
            ))
        })
        .collect::<Result<_>>()?;
    let mut stats = EncodeStats::default();
    let mut out = Vec::with_capacity(encoded.len());
    for (e, windowed, without_tokens) in encoded {
        stats.examples += 1;
        stats.tokens += e.input_ids.len() as u64;
        stats.windowed_examples += u64::from(windowed);
        stats.words_without_tokens += without_tokens;
        out.push(e);
    }
    if stats.windowed_examples > 0 {
        tracing::info!(
            sentences = stats.windowed_examples,
            max_length = options.max_length,
            stride,
            "sentences longer than the model are read in overlapping windows"
        );
    }
    Ok((out, stats))
}

/// The padding token id: the tokenizer's padding configuration if it has one, else `[PAD]`.
pub fn pad_id(tokenizer: &Tokenizer) -> Result<u32> {
    if let Some(padding) = tokenizer.get_padding() {
        return Ok(padding.pad_id);
    }
    tokenizer
        .token_to_id("[PAD]")
        .ok_or_else(|| DatasetError::Tokenizer("no padding configured and no [PAD] token".into()))
}
