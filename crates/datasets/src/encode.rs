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
    /// Longest sequence the model reads, special tokens included (default 512). Longer texts are truncated for
    /// classification; longer NER sentences are read in overlapping windows (see [`Window`]).
    pub max_length: usize,
    /// NER: give later sub-tokens of a word the `I-` label of its entity (`O` for `O` words)
    /// instead of [`IGNORE_INDEX`].
    pub label_all_tokens: bool,
    /// NER: tokens shared by consecutive windows of a long sentence; `None`: a quarter of `max_length`.
    pub stride: Option<usize>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { max_length: 512, label_all_tokens: false, stride: None }
    }
}

impl EncodeOptions {
    /// The options for a model that reads `max_length` tokens at most.
    pub fn for_length(max_length: usize) -> Self {
        Self { max_length, ..Self::default() }
    }

    /// The overlap of consecutive windows: `stride`, or a quarter of `max_length`.
    pub fn window_stride(&self) -> usize {
        self.stride.unwrap_or(self.max_length / 4)
    }
}

/// A stretch of a sequence longer than the model: the content tokens `start..end` (positions in the whole sequence,
/// between its first and last token, which are special: `[CLS]`, `[SEP]`), read as one row with the sequence's
/// first and last token around them. Consecutive windows overlap, and each token's prediction is taken from the
/// window in which it has the most context on both sides (see [`rows`]), as Hugging Face's token-classification
/// pipeline does with `stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First content position.
    pub start: u32,
    /// One past the last content position.
    pub end: u32,
}

/// The windows a model that reads at most `max_length` tokens (special tokens included) needs for a sequence of
/// `len` tokens (its first and last special), consecutive windows sharing `stride` content tokens; none when the
/// sequence fits. An error when a window cannot hold a token and still advance.
///
/// ```
/// use datasets::{windows, Window};
/// assert!(windows(10, 10, 2).unwrap().is_empty());
/// // 12 content tokens (positions 1..13), 6 a window, 2 shared: 1..7, 5..11, 9..13.
/// let w = windows(14, 8, 2).unwrap();
/// assert_eq!(w, [Window { start: 1, end: 7 }, Window { start: 5, end: 11 }, Window { start: 9, end: 13 }]);
/// ```
pub fn windows(len: usize, max_length: usize, stride: usize) -> Result<Vec<Window>> {
    if len <= max_length {
        return Ok(Vec::new());
    }
    let per_window = max_length.saturating_sub(2);
    if per_window == 0 || stride >= per_window {
        return Err(DatasetError::InvalidOption(format!(
            "windows of {max_length} tokens sharing {stride} cannot advance: the stride must be below {per_window}"
        )));
    }
    let last = len - 1;
    let to_u32 = |n: usize| u32::try_from(n).map_err(|_| DatasetError::InvalidOption(format!("{n} tokens")));
    let mut out = Vec::new();
    let mut start = 1;
    loop {
        let end = (start + per_window).min(last);
        out.push(Window { start: to_u32(start)?, end: to_u32(end)? });
        if end == last {
            return Ok(out);
        }
        start += per_window - stride;
    }
}

/// One row the model reads for an example: the positions (in the whole sequence) of its tokens, and for each
/// whether this row's prediction is the one that counts for that position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Positions of the row's tokens in the example's sequence.
    pub positions: Vec<usize>,
    /// Whether the row owns each position: the position's label trains here and its prediction is read here.
    pub owned: Vec<bool>,
}

/// The rows the model reads for a sequence of `len` tokens read in `windows` (none: one row, the whole sequence):
/// each window with the sequence's first and last token around it. A content position is owned by the window in
/// which it has the most context (the larger of its distances to the nearer end; ties: the earlier window); the
/// special tokens of a windowed sequence are owned by no row.
///
/// ```
/// use datasets::{rows, windows};
/// let rows = rows(14, &windows(14, 8, 2).unwrap());
/// assert_eq!(rows[0].positions, [0, 1, 2, 3, 4, 5, 6, 13]);
/// // Position 5 is the second-to-last of the first window and second of the second: the first wins the tie.
/// assert_eq!(rows.iter().filter(|r| r.positions.iter().zip(&r.owned).any(|(&p, &o)| p == 5 && o)).count(), 1);
/// assert!(rows[0].owned[5] && !rows[1].owned[0]);
/// ```
pub fn rows(len: usize, windows: &[Window]) -> Vec<Row> {
    if windows.is_empty() {
        return vec![Row { positions: (0..len).collect(), owned: vec![true; len] }];
    }
    let context = |window: &Window, p: usize| {
        let (start, end) = (window.start as usize, window.end as usize);
        (start <= p && p < end).then(|| (p - start).min(end - 1 - p))
    };
    // The windows holding `p` are consecutive (they are sorted and cover the sequence in order): only they compete.
    let owner = |p: usize| -> Option<usize> {
        let first = windows.partition_point(|w| (w.end as usize) <= p);
        let mut best: Option<(usize, usize)> = None;
        for (index, window) in windows.iter().enumerate().skip(first) {
            let Some(score) = context(window, p) else { break };
            if best.is_none_or(|(_, top)| score > top) {
                best = Some((index, score));
            }
        }
        best.map(|(index, _)| index)
    };
    windows
        .iter()
        .enumerate()
        .map(|(index, window)| {
            let mut positions = vec![0];
            positions.extend(window.start as usize..window.end as usize);
            positions.push(len.saturating_sub(1));
            let owned = positions
                .iter()
                .enumerate()
                .map(|(j, &p)| j != 0 && j + 1 != positions.len() && owner(p) == Some(index))
                .collect();
            Row { positions, owned }
        })
        .collect()
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
            Ok((
                Encoded {
                    input_ids: encoding.get_ids().to_vec(),
                    type_ids: type_ids(&encoding)?,
                    target: Target::Tokens(target),
                },
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
