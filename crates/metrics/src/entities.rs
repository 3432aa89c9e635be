//! Named-entity metrics matching seqeval: entity extraction (default
//! conlleval-compatible mode and strict schemes), per-type scores with micro,
//! macro and weighted averages, the text report, and token accuracy.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{InputSide, InvalidTagReason, MetricsError, Result};
use crate::report::ReportTable;
use crate::scheme::{strict_entities, Scheme, StrictToken, OUTSIDE};
use crate::scores::{
    f1_from_precision_recall, numpy_mean, numpy_weighted_mean, ratio_or_zero, AverageScores, Metric, UndefinedMetric,
    UndefinedReason,
};

/// How entities are read from tag sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityMode {
    /// seqeval's default, conlleval-compatible reading (`get_entities`): an
    /// `I-X` after `O` or after another type starts an entity; `E-`/`S-` are honoured.
    Default,
    /// seqeval's `mode='strict'` with the given scheme: only well-formed
    /// entities count and tags must use the scheme's prefixes.
    Strict(Scheme),
}

impl fmt::Display for EntityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityMode::Default => f.write_str("default"),
            EntityMode::Strict(scheme) => write!(f, "strict {scheme}"),
        }
    }
}

/// One entity: a typed span of tokens in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    /// Index of the sentence.
    pub sentence: usize,
    /// Entity type, e.g. `"PER"` (`"_"` for tags without a type).
    pub entity_type: String,
    /// Index of the first token.
    pub start: usize,
    /// Index one past the last token (exclusive).
    pub end: usize,
}

/// Scores of one entity type, as in one row of seqeval's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityTypeScores {
    /// Entity type.
    pub entity_type: String,
    /// `tp / predicted`, 0.0 when no entity of this type was predicted.
    pub precision: f64,
    /// `tp / support`, 0.0 when the type has no true entity.
    pub recall: f64,
    /// `2 p r / (p + r)`, 0.0 when `p + r == 0`.
    pub f1: f64,
    /// Number of true entities of this type.
    pub support: usize,
    /// Number of predicted entities of this type.
    pub predicted: usize,
    /// Number of predicted entities that exactly match a true one.
    pub true_positives: usize,
}

/// Everything seqeval's `classification_report` shows, plus raw counts and
/// the list of ill-defined values that were set to 0.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityReport {
    /// How entities were read.
    pub mode: EntityMode,
    /// One entry per entity type found in `y_true` or `y_pred`, sorted as seqeval sorts them.
    pub types: Vec<EntityTypeScores>,
    /// Scores from the summed counts over all types.
    pub micro_avg: AverageScores,
    /// Unweighted mean over types.
    pub macro_avg: AverageScores,
    /// Mean over types weighted by support.
    pub weighted_avg: AverageScores,
    /// Values seqeval warns about and sets to 0.0.
    pub undefined_metrics: Vec<UndefinedMetric>,
}

impl EntityReport {
    /// The report text, byte-identical to seqeval's `classification_report(..., digits=digits)`.
    ///
    /// With no entity type at all seqeval raises; this renders the header and the average rows.
    pub fn to_text(&self, digits: usize) -> String {
        let mut table = ReportTable::new(self.types.iter().map(|t| t.entity_type.as_str()), digits);
        for row in &self.types {
            table.row(&row.entity_type, row.precision, row.recall, row.f1, &row.support.to_string());
        }
        table.blank_line();
        for (name, avg) in
            [("micro avg", &self.micro_avg), ("macro avg", &self.macro_avg), ("weighted avg", &self.weighted_avg)]
        {
            table.row(name, avg.precision, avg.recall, avg.f1, &avg.support.to_string());
        }
        table.finish()
    }
}

impl fmt::Display for EntityReport {
    /// Same as [`EntityReport::to_text`] with 2 digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text(2))
    }
}

/// A `(type, start, end)` span inside one sentence; `end` is exclusive.
pub(crate) type Span<'a> = (&'a str, usize, usize);

/// Reads the entities of one sentence at a time, reusing buffers.
struct SentenceReader<'a> {
    mode: EntityMode,
    strict_tokens: Vec<StrictToken<'a>>,
}

impl<'a> SentenceReader<'a> {
    fn new(mode: EntityMode) -> Self {
        SentenceReader { mode, strict_tokens: Vec::new() }
    }

    /// Clears `out` and fills it with the sentence's spans in order of start.
    fn read<S: AsRef<str>>(
        &mut self,
        tags: &'a [S],
        side: InputSide,
        sentence: usize,
        out: &mut Vec<Span<'a>>,
    ) -> Result<()> {
        out.clear();
        let invalid = |token: usize, tag: &str, reason| MetricsError::InvalidTag {
            side,
            sentence,
            token,
            tag: tag.to_owned(),
            reason,
        };
        match self.mode {
            EntityMode::Strict(scheme) => {
                self.strict_tokens.clear();
                for (position, tag) in tags.iter().enumerate() {
                    let tag = tag.as_ref();
                    let token = StrictToken::parse_for(tag, scheme).map_err(|reason| invalid(position, tag, reason))?;
                    self.strict_tokens.push(token);
                }
                self.strict_tokens.push(OUTSIDE);
                strict_entities(&self.strict_tokens, scheme, out);
            }
            EntityMode::Default => {
                for (position, tag) in tags.iter().enumerate() {
                    let tag = tag.as_ref();
                    if parse_default_tag(tag).is_none() {
                        return Err(invalid(position, tag, InvalidTagReason::NotAnEntityTag));
                    }
                }
                default_entities(tags, out);
            }
        }
        Ok(())
    }
}

/// Splits a default-mode tag into `(prefix character, type)` as seqeval's
/// `get_entities` does; `None` for tags seqeval warns about.
fn parse_default_tag(tag: &str) -> Option<(u8, &str)> {
    let bytes = tag.as_bytes();
    match bytes {
        [single @ (b'O' | b'B' | b'I' | b'E' | b'S')] => Some((*single, "_")),
        [prefix @ (b'B' | b'I' | b'E' | b'S'), b'-', ..] => {
            let entity_type = tag.get(2..).unwrap_or("");
            Some((*prefix, if entity_type.is_empty() { "_" } else { entity_type }))
        }
        _ => None,
    }
}

/// seqeval's `end_of_chunk(prev_tag, tag, prev_type, type_)`.
fn end_of_chunk(prev_tag: u8, tag: u8, prev_type: &str, entity_type: &str) -> bool {
    matches!(prev_tag, b'E' | b'S')
        || (matches!(prev_tag, b'B' | b'I') && matches!(tag, b'B' | b'S' | b'O'))
        || (prev_tag != b'O' && prev_tag != b'.' && prev_type != entity_type)
}

/// seqeval's `start_of_chunk(prev_tag, tag, prev_type, type_)`.
fn start_of_chunk(prev_tag: u8, tag: u8, prev_type: &str, entity_type: &str) -> bool {
    matches!(tag, b'B' | b'S')
        || (matches!(prev_tag, b'E' | b'S' | b'O') && matches!(tag, b'E' | b'I'))
        || (tag != b'O' && tag != b'.' && prev_type != entity_type)
}

/// Default-mode spans of one sentence (tags already validated), in order of start.
fn default_entities<'a, S: AsRef<str>>(tags: &'a [S], out: &mut Vec<Span<'a>>) {
    let mut prev_tag = b'O';
    let mut prev_type = "";
    let mut begin = 0;
    let sentinel = std::iter::once((b'O', "_"));
    let parsed = tags.iter().map(|tag| parse_default_tag(tag.as_ref()).unwrap_or((b'O', "_"))).chain(sentinel);
    for (i, (tag, entity_type)) in parsed.enumerate() {
        if end_of_chunk(prev_tag, tag, prev_type, entity_type) {
            out.push((prev_type, begin, i));
        }
        if start_of_chunk(prev_tag, tag, prev_type, entity_type) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = entity_type;
    }
}

/// Extracts every entity of every sentence.
///
/// `end` is exclusive in both modes (seqeval's `get_entities` reports an
/// inclusive end and global offsets; convert with `end - 1`). Errors name the
/// sentence and token of the first invalid tag.
pub fn extract_entities<Seq, S>(sequences: &[Seq], mode: EntityMode) -> Result<Vec<Entity>>
where
    Seq: AsRef<[S]>,
    S: AsRef<str>,
{
    let mut reader = SentenceReader::new(mode);
    let mut spans = Vec::new();
    let mut entities = Vec::new();
    for (sentence, tags) in sequences.iter().enumerate() {
        reader.read(tags.as_ref(), InputSide::Sequences, sentence, &mut spans)?;
        entities.extend(spans.iter().map(|&(entity_type, start, end)| Entity {
            sentence,
            entity_type: entity_type.to_owned(),
            start,
            end,
        }));
    }
    Ok(entities)
}

/// Checks sentence counts and lengths; errors when there is no token at all.
fn check_sentences<T, P, S, R>(y_true: &[T], y_pred: &[P]) -> Result<()>
where
    T: AsRef<[S]>,
    P: AsRef<[R]>,
{
    if y_true.len() != y_pred.len() {
        return Err(MetricsError::LengthMismatch { y_true: y_true.len(), y_pred: y_pred.len() });
    }
    let mut tokens = 0usize;
    for (sentence, (t, p)) in y_true.iter().zip(y_pred).enumerate() {
        let (t, p) = (t.as_ref().len(), p.as_ref().len());
        if t != p {
            return Err(MetricsError::SentenceLengthMismatch { sentence, y_true: t, y_pred: p });
        }
        tokens += t;
    }
    if tokens == 0 {
        return Err(MetricsError::EmptyInput);
    }
    Ok(())
}

/// Per-type counts, indexed by an interned type id.
#[derive(Default)]
struct TypeCounts<'a> {
    ids: HashMap<&'a str, usize>,
    names: Vec<&'a str>,
    true_positives: Vec<usize>,
    predicted: Vec<usize>,
    support: Vec<usize>,
}

impl<'a> TypeCounts<'a> {
    fn id(&mut self, name: &'a str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.ids.insert(name, id);
        self.names.push(name);
        self.true_positives.push(0);
        self.predicted.push(0);
        self.support.push(0);
        id
    }

    fn add(counts: &mut [usize], id: usize) {
        if let Some(count) = counts.get_mut(id) {
            *count += 1;
        }
    }

    /// Counts one sentence: spans of each side are ordered by start and do not overlap.
    fn count_sentence(&mut self, truth: &[Span<'a>], predictions: &[Span<'a>]) {
        for &(name, _, _) in truth {
            let id = self.id(name);
            Self::add(&mut self.support, id);
        }
        for &(name, _, _) in predictions {
            let id = self.id(name);
            Self::add(&mut self.predicted, id);
        }
        for_each_match(truth, predictions, |name| {
            let id = self.id(name);
            Self::add(&mut self.true_positives, id);
        });
    }
}

/// Calls `on_match` with the type of every predicted span of one sentence that
/// exactly matches a true span (type, start and end); the spans of each side
/// are ordered by start and do not overlap.
pub(crate) fn for_each_match<'a>(truth: &[Span<'a>], predictions: &[Span<'a>], mut on_match: impl FnMut(&'a str)) {
    let (mut t, mut p) = (truth.iter().peekable(), predictions.iter().peekable());
    while let (Some(&&true_span), Some(&&pred_span)) = (t.peek(), p.peek()) {
        match true_span.1.cmp(&pred_span.1) {
            std::cmp::Ordering::Less => {
                t.next();
            }
            std::cmp::Ordering::Greater => {
                p.next();
            }
            std::cmp::Ordering::Equal => {
                if true_span == pred_span {
                    on_match(true_span.0);
                }
                t.next();
                p.next();
            }
        }
    }
}

/// Per-type and averaged entity scores, identical to seqeval's
/// `classification_report` (`mode=None`, or `mode='strict', scheme=...`).
///
/// Sentences may be `Vec<String>`, `Vec<&str>`, `&[&str]`, ... on either side.
/// A predicted entity counts only if sentence, type, start and end all match.
/// With no entity in either input all averages are 0.0 and flagged in
/// `undefined_metrics` (seqeval's macro average is NaN there and its report raises).
/// Errors on a sentence-count or sentence-length mismatch, when there is no
/// token at all, and on invalid tags (naming side, sentence and token).
pub fn entity_report<T, P, S, R>(y_true: &[T], y_pred: &[P], mode: EntityMode) -> Result<EntityReport>
where
    T: AsRef<[S]>,
    P: AsRef<[R]>,
    S: AsRef<str>,
    R: AsRef<str>,
{
    let mut counts = TypeCounts::default();
    visit_sentence_spans(y_true, y_pred, mode, |truth, predictions| counts.count_sentence(truth, predictions))?;
    Ok(build_report(mode, &counts))
}

/// Reads both inputs sentence by sentence and hands each sentence's true and
/// predicted spans to `visit`, with [`entity_report`]'s checks and error order.
pub(crate) fn visit_sentence_spans<'a, T, P, S, R>(
    y_true: &'a [T],
    y_pred: &'a [P],
    mode: EntityMode,
    mut visit: impl FnMut(&[Span<'a>], &[Span<'a>]),
) -> Result<()>
where
    T: AsRef<[S]>,
    P: AsRef<[R]>,
    S: AsRef<str> + 'a,
    R: AsRef<str> + 'a,
{
    check_sentences(y_true, y_pred)?;
    let mut true_reader = SentenceReader::new(mode);
    let mut pred_reader = SentenceReader::new(mode);
    let (mut true_spans, mut pred_spans) = (Vec::new(), Vec::new());
    for (sentence, (true_tags, pred_tags)) in y_true.iter().zip(y_pred).enumerate() {
        true_reader.read(true_tags.as_ref(), InputSide::YTrue, sentence, &mut true_spans)?;
        if let Err(pred_error) = pred_reader.read(pred_tags.as_ref(), InputSide::YPred, sentence, &mut pred_spans) {
            // Report an invalid tag in y_true first, wherever it is.
            for (later, tags) in y_true.iter().enumerate().skip(sentence + 1) {
                true_reader.read(tags.as_ref(), InputSide::YTrue, later, &mut true_spans)?;
            }
            return Err(pred_error);
        }
        visit(&true_spans, &pred_spans);
    }
    Ok(())
}

/// Turns per-type counts into seqeval's scores.
fn build_report(mode: EntityMode, counts: &TypeCounts<'_>) -> EntityReport {
    let mut order: Vec<usize> = (0..counts.names.len()).collect();
    // Rust's `str` order is code-point order, as Python's `sorted` on `str`.
    order.sort_by_key(|&id| counts.names.get(id).copied().unwrap_or(""));
    let count_at = |values: &[usize], id: usize| values.get(id).copied().unwrap_or(0);

    let mut undefined_metrics = Vec::new();
    let mut types = Vec::with_capacity(order.len());
    for &id in &order {
        let name = counts.names.get(id).copied().unwrap_or("");
        let true_positives = count_at(&counts.true_positives, id);
        let predicted = count_at(&counts.predicted, id);
        let support = count_at(&counts.support, id);
        if predicted == 0 {
            undefined_metrics.push(UndefinedMetric {
                label: name.to_owned(),
                metric: Metric::Precision,
                reason: UndefinedReason::NoPredictedSamples,
            });
        }
        if support == 0 {
            undefined_metrics.push(UndefinedMetric {
                label: name.to_owned(),
                metric: Metric::Recall,
                reason: UndefinedReason::NoTrueSamples,
            });
        }
        let precision = ratio_or_zero(true_positives, predicted);
        let recall = ratio_or_zero(true_positives, support);
        types.push(EntityTypeScores {
            entity_type: name.to_owned(),
            precision,
            recall,
            f1: f1_from_precision_recall(precision, recall),
            support,
            predicted,
            true_positives,
        });
    }

    let total_tp: usize = types.iter().map(|t| t.true_positives).sum();
    let total_predicted: usize = types.iter().map(|t| t.predicted).sum();
    let total_support: usize = types.iter().map(|t| t.support).sum();
    let mut flag_all = |label: &str, reason| {
        for metric in [Metric::Precision, Metric::Recall, Metric::FScore] {
            undefined_metrics.push(UndefinedMetric { label: label.to_owned(), metric, reason });
        }
    };

    let micro_precision = ratio_or_zero(total_tp, total_predicted);
    let micro_recall = ratio_or_zero(total_tp, total_support);
    let micro_avg = AverageScores {
        precision: micro_precision,
        recall: micro_recall,
        f1: f1_from_precision_recall(micro_precision, micro_recall),
        support: total_support,
    };

    let precisions: Vec<f64> = types.iter().map(|t| t.precision).collect();
    let recalls: Vec<f64> = types.iter().map(|t| t.recall).collect();
    let f1s: Vec<f64> = types.iter().map(|t| t.f1).collect();
    let supports: Vec<usize> = types.iter().map(|t| t.support).collect();

    let macro_avg = match (numpy_mean(&precisions), numpy_mean(&recalls), numpy_mean(&f1s)) {
        (Some(precision), Some(recall), Some(f1)) => AverageScores { precision, recall, f1, support: total_support },
        _ => {
            flag_all("macro avg", UndefinedReason::NoLabels);
            zero_scores(total_support)
        }
    };
    let weighted_avg = match (
        numpy_weighted_mean(&precisions, &supports),
        numpy_weighted_mean(&recalls, &supports),
        numpy_weighted_mean(&f1s, &supports),
    ) {
        (Some(precision), Some(recall), Some(f1)) => AverageScores { precision, recall, f1, support: total_support },
        // seqeval returns 0.0 for all three when the total support is zero.
        _ => {
            flag_all("weighted avg", UndefinedReason::ZeroTotalSupport);
            zero_scores(total_support)
        }
    };
    if total_predicted == 0 {
        undefined_metrics.push(UndefinedMetric {
            label: "micro avg".to_owned(),
            metric: Metric::Precision,
            reason: UndefinedReason::NoPredictedSamples,
        });
    }
    if total_support == 0 {
        undefined_metrics.push(UndefinedMetric {
            label: "micro avg".to_owned(),
            metric: Metric::Recall,
            reason: UndefinedReason::NoTrueSamples,
        });
    }

    EntityReport { mode, types, micro_avg, macro_avg, weighted_avg, undefined_metrics }
}

fn zero_scores(support: usize) -> AverageScores {
    AverageScores { precision: 0.0, recall: 0.0, f1: 0.0, support }
}

/// Fraction of tokens whose tag is predicted exactly (seqeval's `accuracy_score`).
///
/// Errors on a sentence-count or sentence-length mismatch and when there is no token.
pub fn token_accuracy<T, P, S, R>(y_true: &[T], y_pred: &[P]) -> Result<f64>
where
    T: AsRef<[S]>,
    P: AsRef<[R]>,
    S: AsRef<str>,
    R: AsRef<str>,
{
    check_sentences(y_true, y_pred)?;
    let (mut correct, mut total) = (0usize, 0usize);
    for (t, p) in y_true.iter().zip(y_pred) {
        for (t, p) in t.as_ref().iter().zip(p.as_ref()) {
            total += 1;
            if t.as_ref() == p.as_ref() {
                correct += 1;
            }
        }
    }
    Ok(ratio_or_zero(correct, total))
}
