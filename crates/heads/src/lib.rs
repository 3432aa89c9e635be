//! Multi-task BERT on libtorch: a shared encoder with a sentence classification head and a token classification
//! (NER) head, the notebook's `MultiTaskSentenceTransformer` (Task 2) with its freezing strategies (Task 3). A model
//! trained on one task has that task's head only ([`Task`], [`MultiTaskModel::tasks`]).
//!
//! - [`MultiTaskModel`] holds one `VarStore`: the [`encoder::BertModel`] at the root under its Hugging Face names,
//!   and the heads as `classification_head.{weight,bias}` and `ner_head.{weight,bias}`. Its
//!   [`forward_t`](MultiTaskModel::forward_t) runs the encoder once for every head; the head-only entry points
//!   ([`f_classification_head`](MultiTaskModel::f_classification_head),
//!   [`f_ner_head`](MultiTaskModel::f_ner_head), [`f_pool`](MultiTaskModel::f_pool)) take cached encoder features.
//! - [`FreezeStrategy`] sets which variables train and returns the optimizer's [`ParamGroup`]s (layer-wise
//!   learning rates for `all_adaptive`); [`parameter_table`] counts trainable values per strategy.
//! - [`MultiTaskModel::save`] / [`MultiTaskModel::load`] write and read self-contained checkpoints;
//!   [`MultiTaskModel::export_encoder`] writes the encoder as a Hugging Face BERT directory.
//! - [`Predictor`] (a checkpoint with its tokenizer) and [`pipeline::predict`] are inference: texts in, a
//!   [`Prediction`] per text out (the class with its probabilities, the words with their tags, the entities with
//!   character offsets and a score; long texts read in windows); see [`pipeline`] for an example.
//!
//! ```no_run
//! use heads::{FreezeStrategy, MultiTaskModel};
//! use std::path::Path;
//! use tch::{Device, Tensor};
//!
//! let pretrained = Path::new("data/models/all-MiniLM-L6-v2");
//! let model = MultiTaskModel::from_pretrained(
//!     pretrained,
//!     vec!["negative".into(), "positive".into()],
//!     vec!["O".into(), "B-PER".into(), "I-PER".into()],
//!     encoder::Pooling::Mean,
//!     Device::Cpu,
//! )?;
//! let groups = "heads_only".parse::<FreezeStrategy>()?.apply(&model, 1e-4)?;
//! assert_eq!(groups.len(), 1);
//!
//! let input_ids = Tensor::from_slice(&[101i64, 7592, 2088, 102]).view([1, 4]);
//! let mask = input_ids.ones_like();
//! let output = model.forward_t(&input_ids, &mask, None, false)?;
//! assert_eq!(output.classification_logits.map(|l| l.size()), Some(vec![1, 2]));
//! assert_eq!(output.ner_logits.map(|l| l.size()), Some(vec![1, 4, 3]));
//!
//! model.save(Path::new("runs/checkpoint"), pretrained, Some(FreezeStrategy::HeadsOnly))?;
//! let reloaded = MultiTaskModel::load(Path::new("runs/checkpoint"), Device::Cpu)?;
//! # Ok::<(), heads::HeadsError>(())
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod freeze;
pub mod head;
pub mod model;
pub mod pipeline;
pub mod task;

pub use checkpoint::{CheckpointMeta, CHECKPOINT_FORMAT_VERSION};
pub use config::MultiTaskConfig;
pub use error::{HeadsError, Result};
pub use freeze::{parameter_table, takes_weight_decay, FreezeStrategy, LearningRates, ParamGroup, ParameterCount};
pub use head::{ClassificationHead, TokenClassificationHead};
pub use model::{MultiTaskModel, MultiTaskOutput};
pub use pipeline::{Aggregation, ClassPrediction, EntitySpan, PredictOptions, Prediction, Predictor};
pub use task::{PerTask, Task, CLASSIFICATION_HEAD, NER_HEAD};
