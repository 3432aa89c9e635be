//! Inference: texts in, typed predictions out (the sentence class and the named entities of each text).
//!
//! [`predict`] tokenizes, batches with dynamic padding ([`encoder::run_sorted_batches`]), runs the model without
//! gradients, maps sub-tokens back to words and decodes the entities:
//!
//! - The class is predicted on the text cleaned as the classification training data was
//!   ([`text_prep::clean_text`]).
//! - The entities are predicted on the raw text split into words as the NER training data is (BERT's pre-tokenizer
//!   rule: whitespace, each punctuation mark a word). A text longer than the model is read in overlapping windows
//!   (as training and evaluation read long sentences, [`text_prep::windows`]), each token's prediction taken from the
//!   window where it has the most context. A word's tag comes from its sub-tokens' predictions by
//!   [`Aggregation`]: the first sub-token's by default, as training and evaluation read it. The tags are read in
//!   strict IOB2 (an `I-` with no `B-` before it starts no entity).
//!
//! For classification, texts longer than the model's length are truncated, with a `tracing` warning. Offsets in
//! [`EntitySpan`] count characters (Unicode scalar values) of the text as given.
//!
//! ```no_run
//! use encoder::BertTokenizer;
//! use heads::{pipeline, HeadsError, MultiTaskModel};
//! use std::path::Path;
//! use tch::Device;
//!
//! // A checkpoint written by `MultiTaskModel::save` (e.g. a `bertmt reproduce` run) holds the model and tokenizer.
//! let dir = Path::new("runs/my-run/checkpoint");
//! let model = MultiTaskModel::load(dir, Device::Cpu)?;
//! let positions = model.config().encoder.max_position_embeddings;
//! let max_length = usize::try_from(positions).map_err(|_| HeadsError::InvalidConfig("positions".into()))?;
//! let tokenizer = BertTokenizer::from_dir(dir, max_length)?;
//!
//! let texts = ["John Smith lives in New York.", "The film was great!"];
//! let predictions = pipeline::predict(&model, &tokenizer, &texts, &pipeline::PredictOptions::default())?;
//! let first = &predictions[0];
//! // A checkpoint trained on both tasks has both parts; one trained on a single task, that task's part only.
//! if let Some(class) = &first.class {
//!     println!("{} ({:.2})", class.label, class.probability);
//! }
//! for entity in first.entities.iter().flatten() {
//!     println!("{} [{}] {:.2}", entity.text, entity.entity_type, entity.score);
//! }
//! # Ok::<(), heads::HeadsError>(())
//! ```

use crate::error::{HeadsError, Result};
use crate::model::MultiTaskModel;
use crate::task::Task;
use encoder::{run_sorted_batches, BertTokenizer};
use metrics::{extract_entities, Entity, EntityMode, Scheme};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{Encoding, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

/// The predictions for one text: the class when the model has a classification head, the entities, words and tags
/// when it has a NER head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The text as given.
    pub text: String,
    /// The sentence class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ClassPrediction>,
    /// The entities, in order of their first word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<EntitySpan>>,
    /// The words the NER head tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<String>>,
    /// The tag of each word (`O` for a word beyond the model's length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// The predicted class with its probability, and every class's probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassPrediction {
    /// The most probable class.
    pub label: String,
    /// Its probability.
    pub probability: f64,
    /// Every class's probability (softmax of the logits).
    pub probabilities: BTreeMap<String, f64>,
}

/// One entity: words `start_word..end_word` (end exclusive) and the text they cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySpan {
    /// The entity type (the tag without its `B-`/`I-` prefix).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// The first word.
    pub start_word: usize,
    /// One past the last word.
    pub end_word: usize,
    /// The text from the first word's start to the last word's end.
    pub text: String,
    /// Character offset of the start in the text.
    pub start_char: usize,
    /// Character offset one past the end in the text.
    pub end_char: usize,
    /// How sure the NER head is of this entity: the mean, over the entity's words, of the probability (softmax over
    /// the NER labels) of the word's tag, as [`Aggregation`] combines its sub-tokens (by default: at its first
    /// sub-token). In (0, 1]; a confidence of the tagger, not a calibrated probability that the span is right.
    pub score: f64,
}

/// How a word's tag comes from the predictions at its sub-tokens (Hugging Face's `aggregation_strategy` of the
/// token-classification pipeline, per word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// The first sub-token's prediction (as the model is trained and evaluated).
    #[default]
    First,
    /// The mean of the sub-tokens' probabilities, then the most probable tag.
    Average,
    /// The prediction of the sub-token that is most sure of its tag.
    Max,
}

impl Aggregation {
    /// Every aggregation, as [`FromStr`](std::str::FromStr) reads it.
    pub const ALL: [Self; 3] = [Self::First, Self::Average, Self::Max];
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "first, average or max";
}

impl std::fmt::Display for Aggregation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::First => "first",
            Self::Average => "average",
            Self::Max => "max",
        })
    }
}

impl std::str::FromStr for Aggregation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.to_string() == s)
            .ok_or_else(|| format!("unknown aggregation `{s}`: expected {}", Self::NAMES))
    }
}

/// How [`predict`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictOptions {
    /// Texts (or windows of long texts) per forward pass (default 32).
    pub batch_size: usize,
    /// How a word's tag comes from its sub-tokens (default: the first's).
    pub aggregation: Aggregation,
    /// Tokens shared by consecutive windows of a text longer than the model (`None`: a quarter of its length).
    pub stride: Option<usize>,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self { batch_size: 32, aggregation: Aggregation::First, stride: None }
    }
}

/// A word of the raw text with its byte and character offsets (ends exclusive).
#[derive(Debug, Clone, PartialEq)]
struct Word {
    text: String,
    bytes: (usize, usize),
    chars: (usize, usize),
}

/// A trained checkpoint ready to predict: the model (at its precision, on its device) and its tokenizer, truncating
/// at the model's length.
#[derive(Debug)]
pub struct Predictor {
    model: MultiTaskModel,
    tokenizer: BertTokenizer,
}

impl Predictor {
    /// Loads the checkpoint in `dir` (written by [`MultiTaskModel::save`]) onto `device`, with its tokenizer checked
    /// against the model's vocabulary.
    pub fn from_checkpoint(dir: &std::path::Path, device: Device) -> Result<Self> {
        let model = MultiTaskModel::load(dir, device)?;
        let config = &model.config().encoder;
        let max_length = usize::try_from(config.max_position_embeddings).map_err(|_| {
            HeadsError::InvalidConfig(format!(
                "max_position_embeddings {} is not a length",
                config.max_position_embeddings
            ))
        })?;
        let tokenizer = BertTokenizer::from_dir(dir, max_length)?;
        tokenizer.check_fits(config.vocab_size)?;
        Ok(Self { model, tokenizer })
    }

    /// The same predictor computing in `precision` (`auto` resolved for its device), with the resolved choice.
    pub fn with_precision(mut self, precision: encoder::Precision) -> Result<(Self, encoder::ResolvedPrecision)> {
        let resolved = precision.resolve(self.model.device());
        self.model.set_precision(resolved.precision)?;
        // A predictor only infers.
        self.model.cast_weights_for_inference();
        Ok((self, resolved))
    }

    /// The model.
    pub fn model(&self) -> &MultiTaskModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The predictions for `texts` (see [`predict`]).
    pub fn predict<S: AsRef<str>>(&self, texts: &[S], options: &PredictOptions) -> Result<Vec<Prediction>> {
        predict(&self.model, &self.tokenizer, texts, options)
    }
}

/// The NER head's probabilities at one token, one per tag.
type TokenProbabilities = Vec<f64>;

/// A word's tag, with the probability of that tag at the word's first sub-token (`None` for a word with no token).
#[derive(Debug, Clone, PartialEq)]
struct WordTag {
    tag: String,
    probability: Option<f64>,
}

/// Classifies `texts` and finds their entities, batched `options.batch_size` texts (or windows) a forward pass with
/// dynamic padding, without gradients; one [`Prediction`] per text, in the order of `texts`.
///
/// The predictions do not depend on `batch_size` (padding is masked out) beyond floating-point rounding. The
/// tokenizer must be the model's (as saved in its checkpoint) and truncate to at most the model's
/// `max_position_embeddings`. No texts give no predictions.
///
/// # Errors
///
/// [`HeadsError::InvalidInput`] when `batch_size` is 0; [`HeadsError::Encoder`] when tokenizing fails;
/// [`HeadsError::WordSplit`] when a text cannot be split into words; [`HeadsError::NerLabels`] when the model's NER
/// labels are not IOB2 tags; [`HeadsError::ModelOutput`] when the model's outputs do not fit its labels; and errors
/// of the model ([`HeadsError::Torch`], ...).
pub fn predict<S: AsRef<str>>(
    model: &MultiTaskModel,
    tokenizer: &BertTokenizer,
    texts: &[S],
    options: &PredictOptions,
) -> Result<Vec<Prediction>> {
    let batch_size = options.batch_size;
    if batch_size == 0 {
        return Err(HeadsError::InvalidInput("batch_size must be at least 1".into()));
    }
    let stride = window_stride(options, tokenizer);
    if stride + 2 >= tokenizer.max_length() {
        return Err(HeadsError::InvalidInput(format!(
            "a stride of {stride} tokens leaves windows of {} no room to advance: give a stride below {}",
            tokenizer.max_length(),
            tokenizer.max_length().saturating_sub(2)
        )));
    }
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let config = model.config();
    let device = model.device();
    let pad_id = tokenizer.pad_id();
    let _no_grad = tch::no_grad_guard();

    let class_probabilities = if model.has_task(Task::Classification) {
        let cleaned: Vec<String> = texts.iter().map(|text| text_prep::clean_text(text.as_ref())).collect();
        let cleaned_refs: Vec<&str> = cleaned.iter().map(String::as_str).collect();
        let class_encodings = tokenizer.encode_texts(&cleaned_refs)?;
        warn_truncated(&class_encodings, tokenizer, "texts truncated to the model's length for classification");
        let ids: Vec<&[u32]> = class_encodings.iter().map(Encoding::get_ids).collect();
        let probabilities =
            run_sorted_batches(&ids, pad_id, device, batch_size, |input_ids, mask| -> Result<Vec<Vec<f64>>> {
                let logits = model.classify_t(input_ids, mask, None, false)?;
                check_finite(&logits, "classification")?;
                let probabilities = logits.f_to_kind(Kind::Double)?.f_softmax(-1, Kind::Double)?;
                Ok(Vec::<Vec<f64>>::try_from(&probabilities.f_to_device(Device::Cpu)?)?)
            })?;
        Some(probabilities)
    } else {
        None
    };
    let entities = if model.has_task(Task::Ner) { Some(tag_texts(model, tokenizer, texts, options)?) } else { None };

    let mut predictions = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let class = class_probabilities
            .as_ref()
            .and_then(|all| all.get(index))
            .map(|probabilities| class_prediction(probabilities, &config.classification_labels))
            .transpose()?;
        let tagged = entities.as_ref().and_then(|all| all.get(index)).cloned();
        let (words, tags, entities) = match tagged {
            Some(Tagged { words, tags, entities }) => (Some(words), Some(tags), Some(entities)),
            None => (None, None, None),
        };
        predictions.push(Prediction { text: text.as_ref().to_string(), class, entities, words, tags });
    }
    Ok(predictions)
}

/// The overlap of consecutive windows: the option's, or the one training uses for the model's length.
fn window_stride(options: &PredictOptions, tokenizer: &BertTokenizer) -> usize {
    options.stride.unwrap_or_else(|| text_prep::default_stride(tokenizer.max_length()))
}

/// A text's words, their tags and its entities.
#[derive(Debug, Clone)]
struct Tagged {
    words: Vec<String>,
    tags: Vec<String>,
    entities: Vec<EntitySpan>,
}

/// Tags the words of `texts` with the NER head and decodes their entities.
fn tag_texts<S: AsRef<str>>(
    model: &MultiTaskModel,
    tokenizer: &BertTokenizer,
    texts: &[S],
    options: &PredictOptions,
) -> Result<Vec<Tagged>> {
    let config = model.config();
    let words: Vec<Vec<Word>> = texts.iter().map(|text| split_words(text.as_ref())).collect::<Result<_>>()?;
    let word_encodings: Vec<Encoding> = words
        .iter()
        .map(|words| {
            let refs: Vec<&str> = words.iter().map(|word| word.text.as_str()).collect();
            Ok(tokenizer.encode_words_whole(&refs)?)
        })
        .collect::<Result<_>>()?;
    // Texts longer than the model are read in overlapping windows: every window of every text is a row.
    let stride = window_stride(options, tokenizer);
    let mut rows: Vec<(usize, text_prep::Row)> = Vec::new();
    for (text, encoding) in word_encodings.iter().enumerate() {
        let len = encoding.get_ids().len();
        let windows = text_prep::windows(len, tokenizer.max_length(), stride)
            .map_err(|error| HeadsError::InvalidInput(error.to_string()))?;
        rows.extend(text_prep::rows(len, &windows).into_iter().map(|row| (text, row)));
    }
    let windowed = word_encodings.iter().filter(|e| e.get_ids().len() > tokenizer.max_length()).count();
    if windowed > 0 {
        tracing::info!(texts = windowed, max_length = tokenizer.max_length(), stride, "long texts read in windows");
    }
    let row_ids: Vec<Vec<u32>> = rows
        .iter()
        .map(|(text, row)| {
            let ids = word_encodings[*text].get_ids();
            row.positions.iter().map(|&p| ids[p]).collect()
        })
        .collect();
    // Each text's token types (1 on capitalized words where the model was trained so, else 0), then each row's.
    let text_types: Vec<Vec<u32>> = word_encodings
        .iter()
        .zip(&words)
        .map(|(encoding, words)| {
            if config.ner_case_types {
                let refs: Vec<&str> = words.iter().map(|word| word.text.as_str()).collect();
                text_prep::case_types(encoding.get_word_ids(), &refs)
            } else {
                encoding.get_type_ids().to_vec()
            }
        })
        .collect();
    let row_types: Vec<Vec<u32>> =
        rows.iter().map(|(text, row)| row.positions.iter().map(|&p| text_types[*text][p]).collect()).collect();
    let row_refs: Vec<&[u32]> = row_ids.iter().map(Vec::as_slice).collect();
    let type_refs: Vec<&[u32]> = row_types.iter().map(Vec::as_slice).collect();
    let row_probabilities = encoder::run_sorted_batches_with_types(
        &row_refs,
        &type_refs,
        tokenizer.pad_id(),
        model.device(),
        options.batch_size,
        |input_ids, mask, types| {
            let logits = model.tag_t(input_ids, mask, Some(types), false)?;
            check_finite(&logits, "NER")?;
            token_probabilities(&logits)
        },
    )?;
    // Each token's probabilities, from the row that owns its position.
    let mut token_probabilities: Vec<Vec<Option<TokenProbabilities>>> =
        word_encodings.iter().map(|e| vec![None; e.get_ids().len()]).collect();
    for ((text, row), probabilities) in rows.iter().zip(row_probabilities) {
        for ((&position, &owned), probabilities) in row.positions.iter().zip(&row.owned).zip(probabilities) {
            if owned {
                if let Some(slot) = token_probabilities[*text].get_mut(position) {
                    *slot = Some(probabilities);
                }
            }
        }
    }
    let word_tags: Vec<Vec<WordTag>> = word_encodings
        .iter()
        .zip(&token_probabilities)
        .zip(&words)
        .map(|((encoding, probabilities), words)| {
            word_tags(encoding.get_word_ids(), probabilities, words.len(), &config.ner_labels, options.aggregation)
        })
        .collect();
    let tags: Vec<Vec<String>> =
        word_tags.iter().map(|tags| tags.iter().map(|word| word.tag.clone()).collect()).collect();
    let mut entities: Vec<Vec<Entity>> = (0..texts.len()).map(|_| Vec::new()).collect();
    for entity in extract_entities(&tags, EntityMode::Strict(Scheme::Iob2)).map_err(HeadsError::NerLabels)? {
        if let Some(sentence) = entities.get_mut(entity.sentence) {
            sentence.push(entity);
        }
    }
    Ok(texts
        .iter()
        .zip(words)
        .zip(tags)
        .zip(word_tags.iter().zip(&entities))
        .map(|(((text, words), tags), (word_tags, entities))| {
            let text = text.as_ref();
            let entities = entities.iter().filter_map(|entity| entity_span(text, &words, word_tags, entity)).collect();
            Tagged { words: words.into_iter().map(|word| word.text).collect(), tags, entities }
        })
        .collect())
}

/// The most probable tag at every position of NER logits `[batch, seq, labels]`, with its softmax probability: one
/// row of `seq` predictions per sequence (padding positions included; callers read only the real tokens).
/// Refuses NaN or infinite logits (broken weights), which would otherwise come out as a confident-looking answer.
fn check_finite(logits: &Tensor, head: &str) -> Result<()> {
    if logits.f_isfinite()?.f_all()?.f_int64_value(&[])? == 1 {
        Ok(())
    } else {
        Err(HeadsError::ModelOutput(format!(
            "the {head} head gave NaN or infinite logits: the checkpoint's weights are not usable"
        )))
    }
}

fn token_probabilities(logits: &Tensor) -> Result<Vec<Vec<TokenProbabilities>>> {
    let probabilities = logits.f_to_kind(Kind::Double)?.f_softmax(-1, Kind::Double)?;
    Ok(Vec::<Vec<Vec<f64>>>::try_from(&probabilities.f_to_device(Device::Cpu)?)?)
}

/// The span of `entity` (words `start..end` of `words`) in `text`, scored by the mean probability of its words'
/// tags. `None` only when the entity does not fit the words, which [`extract_entities`] never gives.
fn entity_span(text: &str, words: &[Word], word_tags: &[WordTag], entity: &Entity) -> Option<EntitySpan> {
    let first = words.get(entity.start)?;
    let last = words.get(entity.end.checked_sub(1)?)?;
    // Every word of an entity has a B-/I- tag, so a predicted one with its probability.
    let probabilities: Vec<f64> =
        word_tags.get(entity.start..entity.end)?.iter().filter_map(|word| word.probability).collect();
    if probabilities.is_empty() {
        return None;
    }
    Some(EntitySpan {
        entity_type: entity.entity_type.clone(),
        start_word: entity.start,
        end_word: entity.end,
        text: text.get(first.bytes.0..last.bytes.1)?.to_string(),
        start_char: first.chars.0,
        end_char: last.chars.1,
        score: probabilities.iter().sum::<f64>() / probabilities.len() as f64,
    })
}

/// Splits raw text into words as BERT's pre-tokenizer does (whitespace, each punctuation mark a word), keeping the
/// original casing and offsets.
fn split_words(text: &str) -> Result<Vec<Word>> {
    let mut pretokenized = PreTokenizedString::from(text);
    BertPreTokenizer.pre_tokenize(&mut pretokenized).map_err(|error| HeadsError::WordSplit(error.to_string()))?;
    let splits = pretokenized.get_splits(OffsetReferential::Original, OffsetType::Byte);
    let mut words = Vec::with_capacity(splits.len());
    for (_, (start, end), _) in splits {
        let (Some(before), Some(word)) = (text.get(..start), text.get(start..end)) else {
            return Err(HeadsError::WordSplit(format!("word offsets {start}..{end} are not in the text")));
        };
        let start_char = before.chars().count();
        words.push(Word {
            text: word.to_string(),
            bytes: (start, end),
            chars: (start_char, start_char + word.chars().count()),
        });
    }
    Ok(words)
}

/// Each word's tag and its probability, from its sub-tokens' probabilities by `aggregation`; `O` (with no
/// probability) for a word with no token (nothing left after normalisation) or a tag index outside `labels`.
fn word_tags(
    word_ids: &[Option<u32>],
    probabilities: &[Option<TokenProbabilities>],
    words: usize,
    labels: &[String],
    aggregation: Aggregation,
) -> Vec<WordTag> {
    // Each word's sub-tokens' probabilities, in token order.
    let mut pieces: Vec<Vec<&TokenProbabilities>> = vec![Vec::new(); words];
    for (word, probabilities) in word_ids.iter().zip(probabilities) {
        if let (Some(word), Some(probabilities)) = (word, probabilities) {
            if let Some(slot) = usize::try_from(*word).ok().and_then(|w| pieces.get_mut(w)) {
                slot.push(probabilities);
            }
        }
    }
    let most_probable = |p: &[f64]| p.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1));
    pieces
        .iter()
        .map(|pieces| {
            let chosen: Option<Vec<f64>> = match aggregation {
                Aggregation::First => pieces.first().map(|p| p.to_vec()),
                Aggregation::Average => pieces.first().map(|first| {
                    (0..first.len())
                        .map(|tag| {
                            pieces.iter().map(|p| p.get(tag).copied().unwrap_or(0.0)).sum::<f64>() / pieces.len() as f64
                        })
                        .collect()
                }),
                Aggregation::Max => pieces
                    .iter()
                    .max_by(|a, b| {
                        let top = |p: &[f64]| most_probable(p).map_or(f64::NEG_INFINITY, |(_, v)| v);
                        top(a).total_cmp(&top(b))
                    })
                    .map(|p| p.to_vec()),
            };
            chosen
                .and_then(|p| most_probable(&p))
                .and_then(|(tag, probability)| {
                    labels.get(tag).map(|tag| WordTag { tag: tag.clone(), probability: Some(probability) })
                })
                .unwrap_or_else(|| WordTag { tag: "O".into(), probability: None })
        })
        .collect()
}

/// The most probable class and every class's probability.
fn class_prediction(probabilities: &[f64], labels: &[String]) -> Result<ClassPrediction> {
    if probabilities.len() != labels.len() {
        return Err(HeadsError::ModelOutput(format!(
            "the classification head gave {} probabilities for {} labels",
            probabilities.len(),
            labels.len()
        )));
    }
    let (label, &probability) = labels
        .iter()
        .zip(probabilities)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .ok_or_else(|| HeadsError::ModelOutput("the model has no classification labels".into()))?;
    Ok(ClassPrediction {
        label: label.clone(),
        probability,
        probabilities: labels.iter().cloned().zip(probabilities.iter().copied()).collect(),
    })
}

fn warn_truncated(encodings: &[Encoding], tokenizer: &BertTokenizer, message: &str) {
    let truncated = encodings.iter().filter(|encoding| !encoding.get_overflowing().is_empty()).count();
    if truncated > 0 {
        tracing::warn!(truncated, max_length = tokenizer.max_length(), "{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{tiny, tiny_config};
    use encoder::Pooling;

    /// The default options with `batch_size`.
    fn batched(batch_size: usize) -> PredictOptions {
        PredictOptions { batch_size, ..PredictOptions::default() }
    }

    /// The parts of a prediction of a model with both heads.
    fn parts(p: &Prediction) -> (&ClassPrediction, &[EntitySpan], &[String], &[String]) {
        (
            p.class.as_ref().expect("a class"),
            p.entities.as_deref().expect("entities"),
            p.words.as_deref().expect("words"),
            p.tags.as_deref().expect("tags"),
        )
    }

    #[test]
    fn words_split_on_whitespace_and_punctuation_with_char_offsets() {
        let words = split_words("Zoë met J.R. Smith, today!").expect("split");
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Zoë", "met", "J", ".", "R", ".", "Smith", ",", "today", "!"]);
        assert_eq!((words[0].bytes, words[0].chars), ((0, 4), (0, 3)));
        assert_eq!((words[1].bytes, words[1].chars), ((5, 8), (4, 7)));
    }

    #[test]
    fn a_word_takes_its_tag_from_its_sub_tokens_by_the_aggregation() {
        let labels: Vec<String> = ["O", "B-LOC", "I-LOC"].iter().map(|s| s.to_string()).collect();
        // [CLS] word0 (two pieces) word1 [SEP]; word 2 has no token.
        let word_ids = [None, Some(0), Some(0), Some(1), None];
        let probabilities: Vec<Option<TokenProbabilities>> = [
            Some(vec![0.9, 0.05, 0.05]),
            Some(vec![0.1, 0.5, 0.4]),
            Some(vec![0.0, 0.05, 0.95]),
            Some(vec![0.2, 0.2, 0.6]),
            Some(vec![0.9, 0.05, 0.05]),
        ]
        .into_iter()
        .collect();
        let tags = |aggregation| {
            word_tags(&word_ids, &probabilities, 3, &labels, aggregation)
                .into_iter()
                .map(|word| (word.tag, word.probability.map(|p| (p * 1000.0).round() / 1000.0)))
                .collect::<Vec<_>>()
        };
        let o = ("O".to_string(), None);
        // First: the first piece's B-LOC (0.5). Average: I-LOC (0.675 against 0.275). Max: the surest piece, I-LOC.
        assert_eq!(tags(Aggregation::First), [("B-LOC".into(), Some(0.5)), ("I-LOC".into(), Some(0.6)), o.clone()]);
        assert_eq!(tags(Aggregation::Average), [("I-LOC".into(), Some(0.675)), ("I-LOC".into(), Some(0.6)), o.clone()]);
        assert_eq!(tags(Aggregation::Max), [("I-LOC".into(), Some(0.95)), ("I-LOC".into(), Some(0.6)), o]);
        for aggregation in Aggregation::ALL {
            assert_eq!(aggregation.to_string().parse::<Aggregation>(), Ok(aggregation));
        }
        assert!("mean".parse::<Aggregation>().unwrap_err().contains(Aggregation::NAMES));
    }

    #[test]
    fn an_entity_scores_the_mean_of_its_words_tag_probabilities() {
        let text = "Zoë visited New York";
        let words = split_words(text).expect("split");
        let tag = |tag: &str, probability| WordTag { tag: tag.into(), probability };
        let word_tags =
            [tag("B-PER", Some(0.9)), tag("O", Some(0.99)), tag("B-LOC", Some(0.8)), tag("I-LOC", Some(0.5))];
        let entity = Entity { sentence: 0, entity_type: "LOC".into(), start: 2, end: 4 };
        let span = entity_span(text, &words, &word_tags, &entity).expect("span");
        assert_eq!((span.text.as_str(), span.start_char, span.end_char), ("New York", 12, 20));
        assert!((span.score - 0.65).abs() < 1e-12, "{}", span.score);
        let entity = Entity { sentence: 0, entity_type: "PER".into(), start: 0, end: 1 };
        let span = entity_span(text, &words, &word_tags, &entity).expect("span");
        assert_eq!((span.text.as_str(), span.start_char, span.end_char, span.score), ("Zoë", 0, 3, 0.9));
    }

    /// A tokenizer for the tiny model (16 positions, so 14 words a text) over a small vocabulary in a tempdir.
    fn tiny_tokenizer() -> BertTokenizer {
        let dir = tempfile::tempdir().expect("tempdir");
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "smith", "lives", "in", "new", "york", "zoe", "met",
            "koln", ".", ",", "!", "the", "film", "was", "great", "##s",
        ];
        std::fs::write(dir.path().join("vocab.txt"), vocab.join("\n")).expect("vocab");
        let tokenizer = BertTokenizer::from_dir(dir.path(), 16).expect("tokenizer");
        tokenizer.check_fits(tiny_config(Pooling::Mean).encoder.vocab_size).expect("fits the tiny model");
        tokenizer
    }

    const TEXTS: [&str; 5] = [
        "John Smith lives in New York.",
        "Zoë met Jöhns in Köln!",
        "The film was great",
        "johns",
        "New York, New York, the film was great and John Smith met Zoë in Köln.",
    ];

    /// Chars `start..end` of `text`.
    fn char_slice(text: &str, start: usize, end: usize) -> String {
        text.chars().skip(start).take(end - start).collect()
    }

    #[test]
    fn predictions_are_in_input_order_and_do_not_depend_on_the_batch_size() {
        let model = tiny(Pooling::Mean);
        let tokenizer = tiny_tokenizer();
        let all = predict(&model, &tokenizer, &TEXTS, &batched(TEXTS.len())).expect("predicts");
        assert_eq!(all.len(), TEXTS.len());
        for (index, prediction) in all.iter().enumerate() {
            assert_eq!(prediction.text, TEXTS[index]);
            // The same as predicting the text alone.
            let alone = predict(&model, &tokenizer, &TEXTS[index..=index], &batched(1)).expect("predicts");
            assert_same(&alone[0], prediction);
        }
        for batch_size in [1, 3, 64] {
            let batched = predict(&model, &tokenizer, &TEXTS, &batched(batch_size)).expect("predicts");
            assert_eq!(batched.len(), all.len());
            for (batched, all) in batched.iter().zip(&all) {
                assert_same(batched, all);
            }
        }
        assert!(predict(&model, &tokenizer, &[] as &[&str], &batched(4)).expect("no texts").is_empty());
        // `&[String]` works as well as `&[&str]`.
        let owned: Vec<String> = TEXTS.iter().map(|text| text.to_string()).collect();
        assert_same(&predict(&model, &tokenizer, &owned, &batched(2)).expect("predicts")[4], &all[4]);
    }

    /// Equal up to floating-point rounding in the probabilities and scores.
    fn assert_same(a: &Prediction, b: &Prediction) {
        let ((a_class, a_entities, a_words, a_tags), (b_class, b_entities, b_words, b_tags)) = (parts(a), parts(b));
        assert_eq!((&a.text, a_words, a_tags, &a_class.label), (&b.text, b_words, b_tags, &b_class.label));
        assert!((a_class.probability - b_class.probability).abs() < 1e-6, "{a:?} vs {b:?}");
        for (label, p) in &a_class.probabilities {
            assert!((p - b_class.probabilities[label]).abs() < 1e-6, "{a:?} vs {b:?}");
        }
        assert_eq!(a_entities.len(), b_entities.len(), "{a:?} vs {b:?}");
        for (x, y) in a_entities.iter().zip(b_entities) {
            assert_eq!(EntitySpan { score: 0.0, ..x.clone() }, EntitySpan { score: 0.0, ..y.clone() });
            assert!((x.score - y.score).abs() < 1e-6, "{x:?} vs {y:?}");
        }
    }

    #[test]
    fn class_probabilities_sum_to_one_and_the_label_is_the_most_probable() {
        let model = tiny(Pooling::Cls);
        let predictions = predict(&model, &tiny_tokenizer(), &TEXTS, &batched(2)).expect("predicts");
        for prediction in &predictions {
            let (class, entities, words, tags) = parts(prediction);
            assert_eq!(class.probabilities.len(), 3);
            let sum: f64 = class.probabilities.values().sum();
            assert!((sum - 1.0).abs() < 1e-9, "{sum}");
            let best = class.probabilities.iter().max_by(|a, b| a.1.total_cmp(b.1)).expect("labels");
            assert_eq!((best.0, *best.1), (&class.label, class.probability));
            assert_eq!(words.len(), tags.len());
            for entity in entities {
                assert!(entity.score > 0.0 && entity.score <= 1.0, "{entity:?}");
                assert_eq!(entity.text, char_slice(&prediction.text, entity.start_char, entity.end_char));
            }
        }
    }

    /// The tiny model with a NER head that says `B-PER` at every token, with probability
    /// `e^2 / (e^2 + e^1 + 3)`.
    fn everyone_a_person() -> (MultiTaskModel, f64) {
        let model = tiny(Pooling::Mean);
        force_second_tag(&model);
        let e = std::f64::consts::E;
        (model, e * e / (e * e + e + 3.0))
    }

    /// Makes the NER head predict its second label (index 1) at every token.
    fn force_second_tag(model: &MultiTaskModel) {
        tch::no_grad(|| {
            for (name, mut tensor) in model.named_parameters() {
                match name.as_str() {
                    "ner_head.weight" => _ = tensor.zero_(),
                    "ner_head.bias" => tensor.copy_(&Tensor::from_slice(&[0f32, 2.0, 1.0, 0.0, 0.0])),
                    _ => {}
                }
            }
        });
    }

    #[test]
    fn entity_spans_cover_their_text_by_char_offsets_and_score_their_tags() {
        let (model, probability) = everyone_a_person();
        let text = "Zoë Müller met Jöhns in Köln, süß!";
        let predictions = predict(&model, &tiny_tokenizer(), &[text], &batched(8)).expect("predicts");
        let (_, entities, words, tags) = parts(&predictions[0]);
        assert_eq!(words, ["Zoë", "Müller", "met", "Jöhns", "in", "Köln", ",", "süß", "!"]);
        assert!(tags.iter().all(|tag| tag == "B-PER"), "{tags:?}");
        assert_eq!(entities.len(), words.len());
        for (index, entity) in entities.iter().enumerate() {
            assert_eq!((entity.start_word, entity.end_word, entity.entity_type.as_str()), (index, index + 1, "PER"));
            assert_eq!(entity.text, words[index]);
            assert_eq!(entity.text, char_slice(text, entity.start_char, entity.end_char), "{entity:?}");
            assert!((entity.score - probability).abs() < 1e-6, "{entity:?}: expected {probability}");
        }
        // Char offsets, not byte offsets: "Köln" starts at char 24 but byte 27.
        assert_eq!(text.find("Köln"), Some(27));
        assert_eq!((entities[5].start_char, entities[5].end_char), (24, 28));
    }

    #[test]
    fn a_text_longer_than_the_model_is_read_in_windows_and_loses_no_word() {
        let (model, _) = everyone_a_person();
        let text = vec!["John"; 20].join(" ");
        let predictions = predict(&model, &tiny_tokenizer(), &[text.as_str()], &batched(4)).expect("predicts");
        let (_, entities, _, tags) = parts(&predictions[0]);
        // 16 positions hold 14 words: the other 6 come from a second window, none is lost.
        assert_eq!(tags.len(), 20);
        assert!(tags.iter().all(|tag| tag == "B-PER"), "{tags:?}");
        assert_eq!(entities.len(), 20);
        assert_eq!(entities[19].end_char, 19 * 5 + 4);

        // With a model whose tags depend on context: the words the first window owns are tagged as in a text of
        // that window's words alone, and so are those the last window owns.
        let model = tiny(Pooling::Mean);
        let vocabulary = ["john", "smith", "lives", "in", "new", "york", "zoe", "met", "koln", "the", "film", "was"];
        let words: Vec<&str> = (0..23).map(|i| vocabulary[(i * 7) % vocabulary.len()]).collect();
        let tag_words = |words: &[&str]| {
            let predictions = predict(&model, &tiny_tokenizer(), &[words.join(" ")], &batched(8)).expect("predicts");
            parts(&predictions[0]).3.to_vec()
        };
        let long = tag_words(&words);
        assert_eq!(long.len(), 23);
        let windows = text_prep::windows(25, 16, 4).expect("windows");
        let rows = text_prep::rows(25, &windows);
        let owned = |row: &text_prep::Row| row.positions.iter().zip(&row.owned).filter(|(_, &o)| o).count();
        let (first, last) = (owned(&rows[0]), owned(&rows[rows.len() - 1]));
        assert!(first >= 7 && last >= 7, "{first} and {last} words owned at the ends");
        assert_eq!(long[..first], tag_words(&words[..14])[..first]);
        // The last window reads words from its start to the end (its first content position is word start - 1).
        let from = windows[windows.len() - 1].start as usize - 1;
        let alone = tag_words(&words[from..]);
        assert_eq!(long[23 - last..], alone[alone.len() - last..]);
        assert!(long.iter().collect::<std::collections::HashSet<_>>().len() > 1, "the tags vary: {long:?}");
    }

    #[test]
    fn a_text_without_words_has_no_tags() {
        let (model, _) = everyone_a_person();
        let predictions = predict(&model, &tiny_tokenizer(), &["", "  ", "John"], &batched(2)).expect("predicts");
        for prediction in &predictions[..2] {
            let (class, entities, words, tags) = parts(prediction);
            assert!(words.is_empty() && tags.is_empty() && entities.is_empty());
            assert_eq!(class.probabilities.len(), 3);
        }
        assert_eq!(parts(&predictions[2]).3, ["B-PER"]);
    }

    #[test]
    fn a_model_of_one_task_predicts_that_task_only() {
        let tokenizer = tiny_tokenizer();
        let mut config = tiny_config(Pooling::Mean);
        config.classification_labels.clear();
        tch::manual_seed(7);
        let ner_only = MultiTaskModel::new(config, Device::Cpu).expect("model");
        let predictions = predict(&ner_only, &tokenizer, &TEXTS, &batched(2)).expect("predicts");
        for prediction in &predictions {
            assert!(prediction.class.is_none(), "{prediction:?}");
            assert_eq!(prediction.words.as_ref().map(Vec::len), prediction.tags.as_ref().map(Vec::len));
            assert!(prediction.entities.is_some());
        }
        let json = serde_json::to_value(&predictions[0]).expect("json");
        assert!(json.get("class").is_none() && json.get("entities").is_some(), "{json}");
        let mut config = tiny_config(Pooling::Mean);
        config.ner_labels.clear();
        let classification_only = MultiTaskModel::new(config, Device::Cpu).expect("model");
        let predictions = predict(&classification_only, &tokenizer, &TEXTS, &batched(2)).expect("predicts");
        assert!(predictions.iter().all(|p| p.class.is_some() && p.entities.is_none() && p.tags.is_none()));
    }

    #[test]
    fn a_zero_batch_size_is_an_error() {
        let model = tiny(Pooling::Mean);
        let result = predict(&model, &tiny_tokenizer(), &TEXTS, &batched(0));
        assert!(matches!(result, Err(HeadsError::InvalidInput(_))), "{result:?}");
    }

    #[test]
    fn labels_that_are_not_iob2_are_a_typed_error() {
        let mut config = tiny_config(Pooling::Mean);
        config.ner_labels = ["O", "PER", "LOC", "MISC", "ORG"].iter().map(|s| s.to_string()).collect();
        tch::manual_seed(7);
        let model = MultiTaskModel::new(config, Device::Cpu).expect("model");
        // Every token tagged `PER`, which has no B-/I- prefix.
        force_second_tag(&model);
        let result = predict(&model, &tiny_tokenizer(), &TEXTS, &batched(2));
        assert!(matches!(result, Err(HeadsError::NerLabels(_))), "{result:?}");
    }

    #[test]
    fn nan_weights_are_an_error_not_a_prediction() {
        for head in ["classification_head.bias", "ner_head.bias"] {
            let model = tiny(Pooling::Mean);
            tch::no_grad(|| {
                for (name, mut tensor) in model.named_parameters() {
                    if name == head {
                        let _ = tensor.fill_(f64::NAN);
                    }
                }
            });
            let result = predict(&model, &tiny_tokenizer(), &TEXTS, &batched(2));
            let error = result.expect_err("NaN logits").to_string();
            assert!(error.contains("NaN or infinite logits"), "{head}: {error}");
        }
    }
}
