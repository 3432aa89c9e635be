//! `bertmt predict`: the sentence class and the named entities of texts, from a saved multi-task checkpoint.
//!
//! The class is predicted on the text cleaned as the classification training data was (`datasets::clean_text`);
//! the entities on the raw text split into words as the NER training data is (BERT's pre-tokenizer rule:
//! whitespace, each punctuation mark a word), one tag per word from its first sub-token, read in strict IOB2.

use crate::device;
use anyhow::{anyhow, bail, Context, Result};
use encoder::{pad_batch, BertTokenizer};
use heads::checkpoint::CHECKPOINT_FILE;
use heads::MultiTaskModel;
use metrics::{extract_entities, EntityMode, Scheme};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{Encoding, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

/// The directory a run keeps its checkpoint in (`runs/<name>/checkpoint`).
const RUN_CHECKPOINT_DIR: &str = "checkpoint";

/// Arguments of `predict`.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Texts to tag and classify.
    pub texts: Vec<String>,
    /// Read texts from a file, one a line (blank lines skipped).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A checkpoint directory (with checkpoint.json), or a run directory holding `checkpoint/`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute precision: `auto` (bf16 where the device computes it natively), `f32` or `bf16`.
    #[arg(long, default_value = "auto")]
    pub precision: encoder::Precision,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Print one JSON object a line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The predictions for one text.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The text as given.
    pub text: String,
    /// The sentence class.
    pub class: ClassPrediction,
    /// The entities, in order of their first word.
    pub entities: Vec<EntitySpan>,
    /// The words the NER head tagged.
    pub words: Vec<String>,
    /// The tag of each word (`O` for a word beyond the model's length).
    pub tags: Vec<String>,
}

/// The predicted class with its probability, and every class's probability.
#[derive(Debug, Clone, Serialize)]
pub struct ClassPrediction {
    /// The most probable class.
    pub label: String,
    /// Its probability.
    pub probability: f64,
    /// Every class's probability (softmax of the logits).
    pub probabilities: BTreeMap<String, f64>,
}

/// One entity: words `start_word..end_word` (end exclusive) and the text they cover.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

/// A word of the raw text with its byte and character offsets (ends exclusive).
#[derive(Debug, Clone, PartialEq)]
struct Word {
    text: String,
    bytes: (usize, usize),
    chars: (usize, usize),
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let texts = collect_texts(&args.texts, args.file.as_deref())?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let device = device::parse(&args.device)?;
    let dir = resolve_checkpoint(&args.checkpoint)?;
    let mut model = MultiTaskModel::load(&dir, device)
        .with_context(|| format!("cannot load the checkpoint at {}", dir.display()))?;
    let precision = args.precision.resolve(device);
    model.set_precision(precision.precision)?;
    let tokenizer = load_tokenizer(&dir, &model)?;
    let predictions = predict(&model, &tokenizer, &texts, args.batch_size)?;
    if args.json {
        for prediction in &predictions {
            println!("{}", serde_json::to_string(prediction)?);
        }
    } else {
        println!(
            "Checkpoint: {} on {}, precision {} ({})\n",
            dir.display(),
            device::describe(device),
            precision.precision,
            precision.reason
        );
        print!("{}", render(&predictions));
    }
    Ok(())
}

/// The checkpoint directory: `path` when it holds `checkpoint.json`, else the `checkpoint/` of a run directory.
fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        bail!("no checkpoint at {}: the directory does not exist", path.display());
    }
    if !path.is_dir() {
        bail!("{} is not a checkpoint directory", path.display());
    }
    if path.join(CHECKPOINT_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let nested = path.join(RUN_CHECKPOINT_DIR);
    if nested.is_dir() {
        return Ok(nested);
    }
    bail!(
        "{} is not a checkpoint: it has no {CHECKPOINT_FILE} (nor a {RUN_CHECKPOINT_DIR}/ directory, as run directories do)",
        path.display()
    )
}

/// The checkpoint's tokenizer, truncating to the model's length, checked against the model's vocabulary.
fn load_tokenizer(dir: &Path, model: &MultiTaskModel) -> Result<BertTokenizer> {
    let config = &model.config().encoder;
    let max_length = usize::try_from(config.max_position_embeddings)
        .with_context(|| format!("invalid max_position_embeddings {}", config.max_position_embeddings))?;
    let tokenizer = BertTokenizer::from_dir(dir, max_length)
        .with_context(|| format!("cannot load the tokenizer of the checkpoint at {}", dir.display()))?;
    tokenizer
        .check_fits(config.vocab_size)
        .with_context(|| format!("the checkpoint at {} does not fit together", dir.display()))?;
    Ok(tokenizer)
}

/// Classifies and tags `texts`, batched with dynamic padding, without gradients.
pub fn predict(
    model: &MultiTaskModel,
    tokenizer: &BertTokenizer,
    texts: &[String],
    batch_size: usize,
) -> Result<Vec<Prediction>> {
    let config = model.config();
    let device = model.device();
    let _no_grad = tch::no_grad_guard();

    let cleaned: Vec<String> = texts.iter().map(|text| datasets::clean_text(text)).collect();
    let cleaned_refs: Vec<&str> = cleaned.iter().map(String::as_str).collect();
    let class_encodings = tokenizer.encode_texts(&cleaned_refs).context("cannot tokenize the texts")?;
    warn_truncated(&class_encodings, tokenizer, "texts truncated to the model's length for classification");
    let ids: Vec<&[u32]> = class_encodings.iter().map(Encoding::get_ids).collect();
    let probabilities = run_batched(&ids, tokenizer.pad_id(), device, batch_size, |input_ids, mask| {
        let logits = model.classify_t(input_ids, mask, None, false)?;
        let probabilities = logits.to_kind(Kind::Double).softmax(-1, Kind::Double).to_device(Device::Cpu);
        Ok(Vec::<Vec<f64>>::try_from(probabilities)?)
    })?;

    let words: Vec<Vec<Word>> = texts.iter().map(|text| split_words(text)).collect::<Result<_>>()?;
    let word_encodings: Vec<Encoding> = words
        .iter()
        .map(|words| {
            let refs: Vec<&str> = words.iter().map(|word| word.text.as_str()).collect();
            tokenizer.encode_words(&refs).context("cannot tokenize the words of a text")
        })
        .collect::<Result<_>>()?;
    warn_truncated(&word_encodings, tokenizer, "words beyond the model's length are tagged O");
    let ids: Vec<&[u32]> = word_encodings.iter().map(Encoding::get_ids).collect();
    let token_tags = run_batched(&ids, tokenizer.pad_id(), device, batch_size, |input_ids, mask| {
        let logits = model.tag_t(input_ids, mask, None, false)?;
        Ok(Vec::<Vec<i64>>::try_from(logits.argmax(-1, false).to_device(Device::Cpu))?)
    })?;
    let tags: Vec<Vec<String>> = word_encodings
        .iter()
        .zip(&token_tags)
        .zip(&words)
        .map(|((encoding, predicted), words)| {
            word_tags(encoding.get_word_ids(), predicted, words.len(), &config.ner_labels)
        })
        .collect();
    let entities = extract_entities(&tags, EntityMode::Strict(Scheme::Iob2))
        .context("the checkpoint's NER labels are not IOB2 tags")?;

    let mut predictions = Vec::with_capacity(texts.len());
    for (index, ((text, words), (tags, probabilities))) in
        texts.iter().zip(words).zip(tags.into_iter().zip(probabilities)).enumerate()
    {
        let class = class_prediction(&probabilities, &config.classification_labels)?;
        let entities = entities
            .iter()
            .filter(|entity| entity.sentence == index)
            .filter_map(|entity| {
                let (first, last) = (words.get(entity.start)?, words.get(entity.end.checked_sub(1)?)?);
                Some(EntitySpan {
                    entity_type: entity.entity_type.clone(),
                    start_word: entity.start,
                    end_word: entity.end,
                    text: text.get(first.bytes.0..last.bytes.1)?.to_string(),
                    start_char: first.chars.0,
                    end_char: last.chars.1,
                })
            })
            .collect();
        let words = words.into_iter().map(|word| word.text).collect();
        predictions.push(Prediction { text: text.clone(), class, entities, words, tags });
    }
    Ok(predictions)
}

/// Runs `forward` on batches of `sequences` (longest first, padded to the longest in the batch); `forward` returns
/// one output per row. Returns the outputs in the order of `sequences`.
fn run_batched<T>(
    sequences: &[&[u32]],
    pad_id: u32,
    device: Device,
    batch_size: usize,
    mut forward: impl FnMut(&Tensor, &Tensor) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(sequences[index].len()));
    let mut outputs: Vec<Option<T>> = (0..sequences.len()).map(|_| None).collect();
    for indices in order.chunks(batch_size) {
        let batch: Vec<&[u32]> = indices.iter().map(|&index| sequences[index]).collect();
        let (input_ids, mask) = pad_batch(&batch, pad_id, device);
        let rows = forward(&input_ids, &mask)?;
        if rows.len() != indices.len() {
            bail!("the model returned {} rows for a batch of {}", rows.len(), indices.len());
        }
        for (&index, row) in indices.iter().zip(rows) {
            outputs[index] = Some(row);
        }
    }
    outputs.into_iter().map(|output| output.context("a text got no prediction")).collect()
}

/// Splits raw text into words as BERT's pre-tokenizer does (whitespace, each punctuation mark a word), keeping the
/// original casing and offsets.
fn split_words(text: &str) -> Result<Vec<Word>> {
    let mut pretokenized = PreTokenizedString::from(text);
    BertPreTokenizer
        .pre_tokenize(&mut pretokenized)
        .map_err(|error| anyhow!("cannot split a text into words: {error}"))?;
    let splits = pretokenized.get_splits(OffsetReferential::Original, OffsetType::Byte);
    let mut words = Vec::with_capacity(splits.len());
    for (_, (start, end), _) in splits {
        let word = text.get(start..end).with_context(|| format!("word offsets {start}..{end} are not in the text"))?;
        let start_char = text[..start].chars().count();
        words.push(Word {
            text: word.to_string(),
            bytes: (start, end),
            chars: (start_char, start_char + word.chars().count()),
        });
    }
    Ok(words)
}

/// Each word's tag: the prediction at its first sub-token, as training and evaluation read it; `O` for a word with
/// no token (cut off by truncation, or nothing left after normalisation).
fn word_tags(word_ids: &[Option<u32>], predicted: &[i64], words: usize, labels: &[String]) -> Vec<String> {
    let mut tags = vec![None; words];
    let mut previous = None;
    for (&word, &tag) in word_ids.iter().zip(predicted) {
        if let Some(word) = word {
            if previous != Some(word) {
                if let Some(slot) = usize::try_from(word).ok().and_then(|w| tags.get_mut(w)) {
                    *slot = usize::try_from(tag).ok().and_then(|t| labels.get(t)).cloned();
                }
            }
        }
        previous = word;
    }
    tags.into_iter().map(|tag| tag.unwrap_or_else(|| "O".into())).collect()
}

/// The most probable class and every class's probability.
fn class_prediction(probabilities: &[f64], labels: &[String]) -> Result<ClassPrediction> {
    if probabilities.len() != labels.len() {
        bail!("the classification head gave {} probabilities for {} labels", probabilities.len(), labels.len());
    }
    let (best, &probability) = probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .context("the checkpoint has no classification labels")?;
    Ok(ClassPrediction {
        label: labels[best].clone(),
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

/// The console view: each text, its class and its entities.
pub fn render(predictions: &[Prediction]) -> String {
    let mut out = String::new();
    for (index, prediction) in predictions.iter().enumerate() {
        let _ = writeln!(out, "{}. \"{}\"", index + 1, prediction.text);
        let _ = writeln!(out, "   sentiment: {} ({:.2})", prediction.class.label, prediction.class.probability);
        let entities: Vec<String> = prediction
            .entities
            .iter()
            .map(|e| format!("{} [{}] (words {}-{})", e.text, e.entity_type, e.start_word, e.end_word))
            .collect();
        let entities = if entities.is_empty() { "none".to_string() } else { entities.join(", ") };
        let _ = writeln!(out, "   entities: {entities}");
    }
    out
}

/// The texts of the arguments then of `file` (one a line); blank texts are skipped.
fn collect_texts(args: &[String], file: Option<&Path>) -> Result<Vec<String>> {
    let mut texts: Vec<String> = args.iter().filter(|text| !text.trim().is_empty()).cloned().collect();
    if let Some(file) = file {
        let content = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        texts.extend(content.lines().filter(|line| !line.trim().is_empty()).map(str::to_string));
    }
    if texts.is_empty() {
        bail!("no texts to predict: pass them as arguments or with --file (one a line, blank lines skipped)");
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_whitespace_and_punctuation_with_char_offsets() {
        let words = split_words("Zoë met J.R. Smith, today!").expect("split");
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Zoë", "met", "J", ".", "R", ".", "Smith", ",", "today", "!"]);
        assert_eq!((words[0].bytes, words[0].chars), ((0, 4), (0, 3)));
        assert_eq!((words[1].bytes, words[1].chars), ((5, 8), (4, 7)));
    }

    #[test]
    fn each_word_takes_its_first_sub_token_tag() {
        let labels: Vec<String> = ["O", "B-LOC", "I-LOC"].iter().map(|s| s.to_string()).collect();
        let word_ids = [None, Some(0), Some(0), Some(1), None];
        assert_eq!(word_tags(&word_ids, &[0, 1, 2, 2, 0], 3, &labels), ["B-LOC", "I-LOC", "O"]);
    }
}
