//! Which token starts which word, and the windows a sequence longer than the model is read in: the one rule by
//! which training, evaluation and inference align sub-tokens with words.

use serde::{Deserialize, Serialize};

/// Why a sequence cannot be read in windows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The windows would not move forward.
    #[error("windows of {max_length} tokens sharing {stride} cannot advance: the stride must be below {}", max_length.saturating_sub(2))]
    CannotAdvance {
        /// The longest row the model reads.
        max_length: usize,
        /// Tokens shared by consecutive windows.
        stride: usize,
    },
    /// A sequence too long to index.
    #[error("a sequence of {len} tokens is too long to read in windows")]
    TooLong {
        /// Its tokens.
        len: usize,
    },
}

/// The overlap of consecutive windows when none is given: a quarter of the model's length (128 of 512).
pub fn default_stride(max_length: usize) -> usize {
    max_length / 4
}

/// For each token, its token type when the casing of words is given to a model whose vocabulary lowercases them: 1
/// for every sub-token of a word that starts with a capital letter, 0 elsewhere (special tokens, other words). The
/// one rule by which training, evaluation and inference mark capitalized words (through BERT's token-type embedding,
/// unused by single-sentence inputs).
///
/// ```
/// // [CLS] paris is in france [SEP] for the words "Paris is in France".
/// let types = text_prep::case_types(&[None, Some(0), Some(1), Some(2), Some(3), None], &["Paris", "is", "in", "France"]);
/// assert_eq!(types, [0, 1, 0, 0, 1, 0]);
/// ```
pub fn case_types<S: AsRef<str>>(word_ids: &[Option<u32>], words: &[S]) -> Vec<u32> {
    word_ids
        .iter()
        .map(|word| {
            let word = word.and_then(|index| words.get(usize::try_from(index).ok()?));
            u32::from(word.is_some_and(|word| word.as_ref().chars().next().is_some_and(char::is_uppercase)))
        })
        .collect()
}

/// For each token, the word it starts: `Some(word)` at a word's first sub-token, `None` at special tokens and at a
/// word's later sub-tokens. The one rule by which a word's label sits on its first sub-token in training
/// (`datasets::align_labels`) and is read back in evaluation and inference.
///
/// ```
/// // [CLS] new york ##er [SEP]: words 0 ("new") and 1 ("yorker", two sub-tokens).
/// let starts: Vec<Option<u32>> = text_prep::word_starts(&[None, Some(0), Some(1), Some(1), None]).collect();
/// assert_eq!(starts, [None, Some(0), Some(1), None, None]);
/// ```
pub fn word_starts(word_ids: &[Option<u32>]) -> impl Iterator<Item = Option<u32>> + '_ {
    word_ids.iter().enumerate().map(|(position, &word)| {
        let previous = position.checked_sub(1).and_then(|p| word_ids.get(p)).copied().flatten();
        word.filter(|&w| previous != Some(w))
    })
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
/// use text_prep::{windows, Window};
/// assert!(windows(10, 10, 2).unwrap().is_empty());
/// // 12 content tokens (positions 1..13), 6 a window, 2 shared: 1..7, 5..11, 9..13.
/// let w = windows(14, 8, 2).unwrap();
/// assert_eq!(w, [Window { start: 1, end: 7 }, Window { start: 5, end: 11 }, Window { start: 9, end: 13 }]);
/// ```
pub fn windows(len: usize, max_length: usize, stride: usize) -> Result<Vec<Window>, WindowError> {
    if len <= max_length {
        return Ok(Vec::new());
    }
    let per_window = max_length.saturating_sub(2);
    if per_window == 0 || stride >= per_window {
        return Err(WindowError::CannotAdvance { max_length, stride });
    }
    let last = len - 1;
    let to_u32 = |n: usize| u32::try_from(n).map_err(|_| WindowError::TooLong { len });
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
/// use text_prep::{rows, windows};
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
