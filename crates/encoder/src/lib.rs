//! A BERT encoder on libtorch, reimplemented from its parts and loaded from any Hugging Face BERT directory.
//!
//! - [`BertConfig`] reads `config.json`; [`BertModel`] mirrors Hugging Face's module tree, so every variable's
//!   name is its checkpoint key (`encoder.layer.0.attention.self.query.weight`, ...).
//! - [`weights`] copies a `model.safetensors` or `pytorch_model.bin` into the model, checking every tensor.
//! - [`BertTokenizer`] is the WordPiece tokenizer from `tokenizer.json` or `vocab.txt`.
//! - [`SentenceEncoder::encode`] gives `[CLS]` or masked-mean sentence vectors, batched by length with
//!   dynamic padding; [`SentenceEncoder::encode_tokens`] gives per-token states.
//! - [`batching::run_sorted_batches`] is that batching on its own (sort longest first, pad with [`pad_batch`], run,
//!   restore the order), for any model that takes token ids and a mask.
//!
//! ```no_run
//! use encoder::{EncodeOptions, SentenceEncoder, cosine_similarity_matrix};
//! let encoder = SentenceEncoder::from_dir("data/models/all-MiniLM-L6-v2".as_ref(), tch::Device::Cpu)?;
//! let vectors = encoder.encode(&["A man is eating food.", "A man is eating bread."], &EncodeOptions::default())?;
//! let similarity = cosine_similarity_matrix(&vectors).double_value(&[0, 1]);
//! assert!(similarity > 0.5);
//! # Ok::<(), encoder::EncoderError>(())
//! ```

pub mod batching;
pub mod config;
pub mod embedder;
pub mod error;
pub mod model;
pub mod pooling;
pub mod precision;
pub mod reference;
pub mod sentence;
pub mod sentence_transformers;
pub mod tokenizer;
pub mod weights;

pub use batching::{f_pad_batch, pad_batch, run_sorted_batches, run_sorted_batches_with_types};
pub use config::{BertConfig, HiddenAct};
pub use embedder::{EmbedOverrides, Embedder, EmbedderInfo, Embeddings, LongText};
pub use error::{EncoderError, Result};
pub use model::{BertModel, BertModelOutput};
pub use pooling::{cosine_similarity_matrix, l2_normalize, masked_mean, pool, Pooling};
pub use precision::{native_bf16, Precision, ResolvedPrecision};
pub use sentence::{load_pretrained, EncodeOptions, ModelFiles, SentenceEncoder, TokenEmbeddings};
pub use sentence_transformers::SentenceTransformersConfig;
pub use tokenizer::BertTokenizer;
pub use weights::{copy_encoder_weights, copy_exactly, read_checkpoint, LoadReport};
