//! Tokenization, and alignment of word labels to sub-tokens.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::{InputSequence, Tokenizer, TruncationParams, TruncationStrategy};

use crate::classification::ClassificationExample;
use crate::error::{DatasetError, Result};
use crate::labels::NerLabels;
use crate::sentences::NerSentence;

/// The label id that loss functions ignore (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i32 = -100;

/// How to tokenize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodeOptions {
    /// Longest sequence, special tokens included (default 512); longer inputs are truncated.
    pub max_length: usize,
    /// NER: give later sub-tokens of a word the `I-` label of its entity (`O` for `O` words)
    /// instead of [`IGNORE_INDEX`].
    pub label_all_tokens: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { max_length: 512, label_all_tokens: false }
    }
}

/// Per-token targets of a token-classification example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTargets {
    /// One label per token: the word's label on its first sub-token, [`IGNORE_INDEX`] on special
    /// tokens and (unless `label_all_tokens`) on later sub-tokens.
    pub labels: Vec<i32>,
    /// For each token, the index of the word it belongs to (`None` for special tokens).
    pub word_ids: Vec<Option<u32>>,
    /// The gold label of every word of the sentence, including words lost to truncation.
    pub word_labels: Vec<u32>,
    /// Words at the end of the sentence that truncation cut off.
    pub words_truncated: u32,
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
    /// Examples cut at `max_length`.
    pub truncated_examples: u64,
    /// NER: words cut off by truncation (their labels are not trained on).
    pub words_truncated: u64,
    /// NER: words that produced no token at all (e.g. only control characters).
    pub words_without_tokens: u64,
    /// Tokens over all examples.
    pub tokens: u64,
}

/// A copy of `tokenizer` that truncates at `max_length` and does not pad.
fn configured(tokenizer: &Tokenizer, max_length: usize) -> Result<Tokenizer> {
    if max_length == 0 {
        return Err(DatasetError::InvalidOption("max_length must be positive".into()));
    }
    let mut tokenizer = tokenizer.clone();
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            ..TruncationParams::default()
        }))
        .map_err(|e| DatasetError::Tokenizer(e.to_string()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
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
    let tokenizer = configured(tokenizer, options.max_length)?;
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

/// For each token, the word it starts: `Some(word)` at a word's first sub-token, `None` at special tokens and at a
/// word's later sub-tokens. The one rule by which a word's label sits on its first sub-token in training
/// ([`align_labels`]) and is read back in evaluation and inference.
///
/// ```
/// // [CLS] new york ##er [SEP]: words 0 ("new") and 1 ("yorker", two sub-tokens).
/// let starts: Vec<Option<u32>> = datasets::word_starts(&[None, Some(0), Some(1), Some(1), None]).collect();
/// assert_eq!(starts, [None, Some(0), Some(1), None, None]);
/// ```
pub fn word_starts(word_ids: &[Option<u32>]) -> impl Iterator<Item = Option<u32>> + '_ {
    word_ids.iter().enumerate().map(|(position, &word)| {
        let previous = position.checked_sub(1).and_then(|p| word_ids.get(p)).copied().flatten();
        word.filter(|&w| previous != Some(w))
    })
}

/// Tokenizes NER sentences as pre-split words (in parallel; output in input order) and aligns
/// their labels (see [`align_labels`]); keeps the token-to-word map and counts words lost to
/// truncation.
pub fn encode_ner(
    tokenizer: &Tokenizer,
    sentences: &[NerSentence],
    labels: &NerLabels,
    options: &EncodeOptions,
) -> Result<(Vec<Encoded>, EncodeStats)> {
    let tokenizer = configured(tokenizer, options.max_length)?;
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
            let truncated = !encoding.get_overflowing().is_empty();
            let words_truncated = if truncated { present.iter().rev().take_while(|p| !**p).count() } else { 0 };
            let missing = present.iter().filter(|p| !**p).count();
            let target = TokenTargets {
                labels: align_labels(&word_ids, &sentence.tags, labels, options.label_all_tokens),
                word_ids,
                word_labels: sentence.tags.clone(),
                words_truncated: u32::try_from(words_truncated).unwrap_or(u32::MAX),
            };
            Ok((
                Encoded {
                    input_ids: encoding.get_ids().to_vec(),
                    type_ids: type_ids(&encoding)?,
                    target: Target::Tokens(target),
                },
                truncated,
                (missing - words_truncated) as u64,
            ))
        })
        .collect::<Result<_>>()?;
    let mut stats = EncodeStats::default();
    let mut out = Vec::with_capacity(encoded.len());
    for (e, truncated, without_tokens) in encoded {
        stats.examples += 1;
        stats.tokens += e.input_ids.len() as u64;
        stats.truncated_examples += u64::from(truncated);
        stats.words_without_tokens += without_tokens;
        if let Target::Tokens(t) = &e.target {
            stats.words_truncated += u64::from(t.words_truncated);
        }
        out.push(e);
    }
    if stats.words_truncated > 0 {
        tracing::warn!(words = stats.words_truncated, sentences = stats.truncated_examples, "words lost to truncation");
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
