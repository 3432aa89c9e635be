//! The WordPiece tokenizer, from a model directory's `tokenizer.json` or, failing that, its `vocab.txt`.

use crate::error::{EncoderError, Result};
use std::path::Path;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// A BERT tokenizer that truncates to the model's length and never pads (batches are padded dynamically).
#[derive(Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    /// The same tokenizer without truncation, for texts read in windows.
    whole: Tokenizer,
    max_length: usize,
    pad_id: u32,
}

impl std::fmt::Debug for BertTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertTokenizer")
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .field("max_length", &self.max_length)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl BertTokenizer {
    /// Loads the tokenizer of a model directory: `tokenizer.json` when present, else `vocab.txt` with the
    /// lower-casing of `tokenizer_config.json` (`do_lower_case`, default true). `max_length` is the longest
    /// sequence the model takes (its `max_position_embeddings`), special tokens included.
    pub fn from_dir(dir: &Path, max_length: usize) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| EncoderError::Tokenizer(format!("{}: {e}", json.display())))?
        } else {
            let vocab = dir.join("vocab.txt");
            if !vocab.is_file() {
                return Err(EncoderError::MissingFile {
                    dir: dir.to_path_buf(),
                    what: "tokenizer.json or vocab.txt".into(),
                });
            }
            let lowercase = read_do_lower_case(&dir.join("tokenizer_config.json"))?;
            wordpiece_from_vocab(&vocab, lowercase)?
        };
        Self::new(inner, max_length)
    }

    /// Wraps a `tokenizers::Tokenizer`, replacing its truncation and padding settings with ours.
    pub fn new(mut inner: Tokenizer, max_length: usize) -> Result<Self> {
        if max_length < 2 {
            return Err(EncoderError::InvalidInput(format!("max_length {max_length} leaves no room for text")));
        }
        let pad_id = inner
            .token_to_id("[PAD]")
            .ok_or_else(|| EncoderError::Tokenizer("the vocabulary has no [PAD] token".into()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        inner.with_padding(None);
        let mut whole = inner.clone();
        whole.with_truncation(None).map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(Self { inner, whole, max_length, pad_id })
    }

    /// Checks that every token id this tokenizer can produce indexes into a model vocabulary of `vocab_size` rows
    /// (a larger tokenizer would make the embedding lookup fail on its extra tokens).
    pub fn check_fits(&self, vocab_size: i64) -> Result<()> {
        let tokens = self.inner.get_vocab_size(true);
        if i64::try_from(tokens).map_or(true, |tokens| tokens > vocab_size) {
            return Err(EncoderError::Tokenizer(format!(
                "the tokenizer has {tokens} tokens but the model's vocab_size is {vocab_size}: they do not belong together"
            )));
        }
        Ok(())
    }

    /// The underlying `tokenizers` tokenizer (with our truncation and no padding).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// The longest sequence produced, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Tokenizes texts (in parallel), adding `[CLS]`/`[SEP]` and truncating to `max_length`.
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.inner.encode_batch(texts.to_vec(), true).map_err(|e| EncoderError::Tokenizer(e.to_string()))
    }

    /// Tokenizes one text already split into words, truncating to `max_length`; `Encoding::get_word_ids` maps
    /// tokens back to the words.
    pub fn encode_words(&self, words: &[&str]) -> Result<Encoding> {
        self.inner.encode(words, true).map_err(|e| EncoderError::Tokenizer(e.to_string()))
    }

    /// Tokenizes one text whole, special tokens included, however long (for reading it in chunks).
    pub fn encode_text_whole(&self, text: &str) -> Result<Encoding> {
        self.whole.encode_fast(text, true).map_err(|e| EncoderError::Tokenizer(e.to_string()))
    }

    /// How many tokens `text` has, special tokens included, before any truncation.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        let encoding = self.whole.encode_fast(text, true).map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().len())
    }

    /// [`encode_words`](Self::encode_words) without truncation, however long the text (for reading it in windows).
    pub fn encode_words_whole(&self, words: &[&str]) -> Result<Encoding> {
        self.whole.encode(words, true).map_err(|e| EncoderError::Tokenizer(e.to_string()))
    }
}

fn read_do_lower_case(path: &Path) -> Result<bool> {
    if !path.is_file() {
        return Ok(true);
    }
    let text = std::fs::read_to_string(path).map_err(|source| EncoderError::Io { path: path.to_path_buf(), source })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EncoderError::Config { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(value.get("do_lower_case").and_then(serde_json::Value::as_bool).unwrap_or(true))
}

/// Builds BERT's tokenizer from a `vocab.txt` (one token a line; the line number is the id).
pub fn wordpiece_from_vocab(vocab: &Path, lowercase: bool) -> Result<Tokenizer> {
    let vocab_path = vocab.to_string_lossy();
    let model = WordPiece::from_file(&vocab_path)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| EncoderError::Tokenizer(format!("{}: {e}", vocab.display())))?;
    let mut tokenizer = Tokenizer::new(model);
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .ok_or_else(|| EncoderError::Tokenizer(format!("{} has no {token} token", vocab.display())))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| EncoderError::Tokenizer(e.to_string()))?
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))))
        .with_decoder(Some(WordPieceDecoder::default()));
    Ok(tokenizer)
}
