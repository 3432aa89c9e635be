//! `MultiTaskModel`: one shared BERT encoder with a sentence classification head and a NER head (the notebook's
//! `MultiTaskSentenceTransformer`), or with one of them only (a model trained on one task).

use crate::config::MultiTaskConfig;
use crate::error::{HeadsError, Result};
use crate::head::{ClassificationHead, TokenClassificationHead};
use crate::task::Task;
use encoder::{copy_encoder_weights, read_checkpoint, BertModel, ModelFiles, Pooling, Precision};
use std::path::Path;
use tch::{nn, Device, Tensor};

/// What [`MultiTaskModel::forward_t`] returns: the logits of each head the model has.
#[derive(Debug)]
pub struct MultiTaskOutput {
    /// Sentence classification logits, `[batch, classes]`.
    pub classification_logits: Option<Tensor>,
    /// Per-token NER logits, `[batch, seq, labels]` (padding positions included; use the mask).
    pub ner_logits: Option<Tensor>,
}

/// A shared BERT encoder with a head per task, all in one `VarStore`.
///
/// The encoder's variables sit at the root under their Hugging Face names (`embeddings.*`, `encoder.layer.N.*`),
/// the heads' as `classification_head.{weight,bias}` and `ner_head.{weight,bias}`. A task whose label list is empty
/// in the configuration has no head ([`tasks`](Self::tasks) lists those it has).
#[derive(Debug)]
pub struct MultiTaskModel {
    vs: nn::VarStore,
    encoder: BertModel,
    classification_head: Option<ClassificationHead>,
    ner_head: Option<TokenClassificationHead>,
    config: MultiTaskConfig,
}

impl MultiTaskModel {
    /// Builds a randomly initialised model on `device` (after validating the configuration), with a head for each
    /// task that has labels.
    pub fn new(config: MultiTaskConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = BertModel::new(vs.root(), &config.encoder);
        let hidden = config.encoder.hidden_size;
        let init_std = config.encoder.initializer_range;
        let classification_head = config.has_task(Task::Classification).then(|| {
            ClassificationHead::new(
                &root / Task::Classification.head_name(),
                hidden,
                config.num_classes(),
                config.head_dropout,
                config.pooling,
                init_std,
            )
        });
        let ner_head = config.has_task(Task::Ner).then(|| {
            TokenClassificationHead::new(
                &root / Task::Ner.head_name(),
                hidden,
                config.num_ner_labels(),
                config.head_dropout,
                init_std,
            )
        });
        Ok(Self { vs, encoder, classification_head, ner_head, config })
    }

    /// Builds a model from a Hugging Face BERT directory (`config.json` and `model.safetensors` or
    /// `pytorch_model.bin`): the encoder's weights are copied, the heads are random. The head dropout is the
    /// encoder's `hidden_dropout_prob`. An empty label list leaves that task's head out.
    pub fn from_pretrained(
        model_dir: &Path,
        classification_labels: Vec<String>,
        ner_labels: Vec<String>,
        pooling: Pooling,
        device: Device,
    ) -> Result<Self> {
        let config = MultiTaskConfig::for_pretrained(model_dir, classification_labels, ner_labels, pooling)?;
        Self::from_pretrained_config(model_dir, config, device)
    }

    /// [`from_pretrained`](Self::from_pretrained) with a configuration of the caller's (from
    /// [`MultiTaskConfig::for_pretrained`], e.g. with another dropout): the weights of `model_dir` must fit it, and
    /// a tensor of another shape is an error that names it.
    pub fn from_pretrained_config(model_dir: &Path, config: MultiTaskConfig, device: Device) -> Result<Self> {
        let files = ModelFiles::locate(model_dir)?;
        let model = Self::new(config, device)?;
        let report = copy_encoder_weights(&model.vs, "", read_checkpoint(&files.weights)?, &files.weights)?;
        tracing::info!(
            dir = %model_dir.display(),
            tensors = report.copied,
            parameters = report.parameters,
            skipped = ?report.skipped,
            "encoder weights loaded; heads initialised at random"
        );
        Ok(model)
    }

    /// The configuration.
    pub fn config(&self) -> &MultiTaskConfig {
        &self.config
    }

    /// The tasks this model has a head for, in [`Task::ALL`] order.
    pub fn tasks(&self) -> Vec<Task> {
        self.config.tasks()
    }

    /// Whether the model has a head for `task`.
    pub fn has_task(&self, task: Task) -> bool {
        self.config.has_task(task)
    }

    /// The variables of the encoder and the heads.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The device of the variables.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The shared encoder.
    pub fn encoder(&self) -> &BertModel {
        &self.encoder
    }

    /// Sets the encoder's compute precision (`F32` or `Bf16`; resolve `Auto` first with
    /// [`Precision::resolve`]). Weights, heads and outputs stay f32.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        Ok(self.encoder.set_precision(precision)?)
    }

    /// For a model that only infers from here on: see [`BertModel::cast_weights_for_inference`].
    pub fn cast_weights_for_inference(&mut self) {
        self.encoder.cast_weights_for_inference();
    }

    /// The sentence classification head, if the model has one.
    pub fn classification_module(&self) -> Option<&ClassificationHead> {
        self.classification_head.as_ref()
    }

    /// The NER head, if the model has one.
    pub fn ner_module(&self) -> Option<&TokenClassificationHead> {
        self.ner_head.as_ref()
    }

    fn classification(&self) -> Result<&ClassificationHead> {
        self.classification_head.as_ref().ok_or(HeadsError::NoHead { task: Task::Classification })
    }

    fn ner(&self) -> Result<&TokenClassificationHead> {
        self.ner_head.as_ref().ok_or(HeadsError::NoHead { task: Task::Ner })
    }

    /// Every variable with its name, sorted by name (shallow clones sharing storage with the `VarStore`).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut parameters: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        parameters.sort_by(|a, b| a.0.cmp(&b.0));
        parameters
    }

    /// The encoder's last hidden state `[batch, seq, hidden]`.
    ///
    /// `input_ids` and `attention_mask` are `[batch, seq]` (mask: 1 for real tokens, 0 for padding);
    /// `token_type_ids` are all zeros when `None`; `train` turns dropout on.
    pub fn encode_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let output = self.encoder.forward_t(input_ids, Some(attention_mask), token_type_ids, train)?;
        Ok(output.last_hidden_state)
    }

    /// The logits of every head the model has, from one encoder pass (arguments as in [`encode_t`](Self::encode_t)).
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<MultiTaskOutput> {
        let hidden = self.encode_t(input_ids, attention_mask, token_type_ids, train)?;
        let classification_logits = match &self.classification_head {
            Some(head) => Some(head.f_forward_t(&head.f_pool(&hidden, attention_mask)?, train)?),
            None => None,
        };
        let ner_logits = self.ner_head.as_ref().map(|head| head.f_forward_t(&hidden, train)).transpose()?;
        Ok(MultiTaskOutput { classification_logits, ner_logits })
    }

    /// Only the classification logits `[batch, classes]` (arguments as in [`encode_t`](Self::encode_t)); an error
    /// when the model has no classification head.
    pub fn classify_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let head = self.classification()?;
        let hidden = self.encode_t(input_ids, attention_mask, token_type_ids, train)?;
        let pooled = head.f_pool(&hidden, attention_mask)?;
        head.f_forward_t(&pooled, train)
    }

    /// Only the NER logits `[batch, seq, labels]` (arguments as in [`encode_t`](Self::encode_t)); an error when the
    /// model has no NER head.
    pub fn tag_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let head = self.ner()?;
        let hidden = self.encode_t(input_ids, attention_mask, token_type_ids, train)?;
        head.f_forward_t(&hidden, train)
    }

    /// Pools encoder states `[batch, seq, hidden]` into sentence vectors `[batch, hidden]` with the configured
    /// pooling (`mask`: `[batch, seq]`, padding never counts); ill-formed shapes are an error.
    pub fn f_pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.classification()?.f_pool(hidden, mask)
    }

    /// The classification head alone, on sentence vectors `[n, hidden]` (fresh or cached): logits `[n, classes]`;
    /// a last dimension other than the hidden size is an error.
    pub fn f_classification_head(&self, pooled: &Tensor, train: bool) -> Result<Tensor> {
        self.classification()?.f_forward_t(pooled, train)
    }

    /// The NER head alone, on token states `[batch, seq, hidden]` or `[n, hidden]` (fresh or cached): logits with
    /// the last dimension replaced by the number of labels; a last dimension other than the hidden size is an error.
    pub fn f_ner_head(&self, token_states: &Tensor, train: bool) -> Result<Tensor> {
        self.ner()?.f_forward_t(token_states, train)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use encoder::BertConfig;
    use tch::Kind;

    /// A tiny random model: hidden 16, 2 layers, 4 heads; 3 classes, 5 NER labels.
    pub(crate) fn tiny_config(pooling: Pooling) -> MultiTaskConfig {
        let encoder = BertConfig {
            vocab_size: 40,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 16,
            ..BertConfig::default()
        };
        let labels = |names: &[&str]| names.iter().map(|name| name.to_string()).collect();
        MultiTaskConfig::new(
            encoder,
            labels(&["neg", "neu", "pos"]),
            labels(&["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]),
            pooling,
        )
    }

    pub(crate) fn tiny(pooling: Pooling) -> MultiTaskModel {
        tch::manual_seed(7);
        MultiTaskModel::new(tiny_config(pooling), Device::Cpu).expect("tiny model")
    }

    /// Two sequences, the second padded: `(input_ids, attention_mask)`.
    pub(crate) fn batch() -> (Tensor, Tensor) {
        let ids = Tensor::from_slice(&[2i64, 11, 12, 13, 14, 3, 2, 21, 22, 3, 0, 0]).view([2, 6]);
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]).view([2, 6]);
        (ids, mask)
    }

    #[test]
    fn variables_have_notebook_and_hugging_face_names() {
        let model = tiny(Pooling::Cls);
        let names: Vec<String> = model.named_parameters().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names.len(), 5 + 16 * 2 + 4);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for name in [
            "classification_head.weight",
            "classification_head.bias",
            "ner_head.weight",
            "ner_head.bias",
            "embeddings.word_embeddings.weight",
            "encoder.layer.1.attention.self.query.weight",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing");
        }
        let shapes: std::collections::HashMap<String, Vec<i64>> =
            model.named_parameters().into_iter().map(|(name, tensor)| (name, tensor.size())).collect();
        assert_eq!(shapes["classification_head.weight"], [3, 16]);
        assert_eq!(shapes["ner_head.bias"], [5]);
    }

    #[test]
    fn output_shapes_for_both_poolings_and_forward_matches_single_task_calls() {
        let (ids, mask) = batch();
        for pooling in [Pooling::Cls, Pooling::Mean] {
            let model = tiny(pooling);
            let output = model.forward_t(&ids, &mask, None, false).expect("forward");
            let (classification, ner) =
                (output.classification_logits.expect("classification"), output.ner_logits.expect("ner"));
            assert_eq!(classification.size(), [2, 3], "{pooling}");
            assert_eq!(ner.size(), [2, 6, 5], "{pooling}");
            let classified = model.classify_t(&ids, &mask, None, false).expect("classify");
            let tagged = model.tag_t(&ids, &mask, None, false).expect("tag");
            assert!(classification.equal(&classified), "{pooling}");
            assert!(ner.equal(&tagged), "{pooling}");
            // The head-only entry points on the encoder's features give the same logits.
            let hidden = model.encode_t(&ids, &mask, None, false).expect("encode");
            assert_eq!(hidden.size(), [2, 6, 16]);
            let pooled = model.f_pool(&hidden, &mask).expect("pool");
            assert!(model.f_classification_head(&pooled, false).expect("head").equal(&classified), "{pooling}");
            assert!(model.f_ner_head(&hidden, false).expect("head").equal(&tagged), "{pooling}");
            assert_eq!(model.f_ner_head(&hidden.view([12, 16]), false).expect("head").size(), [12, 5]);
        }
    }

    #[test]
    fn pooling_choice_changes_the_sentence_vector() {
        let (ids, mask) = batch();
        let cls = tiny(Pooling::Cls);
        let mean = tiny(Pooling::Mean);
        let hidden = cls.encode_t(&ids, &mask, None, false).expect("encode");
        assert!(cls.f_pool(&hidden, &mask).expect("pool").equal(&hidden.select(1, 0)));
        let first_mean = hidden.get(1).narrow(0, 0, 4).mean_dim(0, false, Kind::Float);
        let diff = (mean.f_pool(&hidden, &mask).expect("pool").get(1) - first_mean).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "mean pooling counted padding: {diff}");
    }

    #[test]
    fn mean_pooling_ignores_padding() {
        let model = tiny(Pooling::Mean);
        let (ids, mask) = batch();
        let reference = model.classify_t(&ids, &mask, None, false).expect("classify");
        // Other ids at the padded positions of row 1 and an extra padded position for every row.
        let other_ids = Tensor::from_slice(&[2i64, 11, 12, 13, 14, 3, 9, 2, 21, 22, 3, 30, 31, 5]).view([2, 7]);
        let other_mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0]).view([2, 7]);
        let padded = model.classify_t(&other_ids, &other_mask, None, false).expect("classify");
        let diff = (reference - padded).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "padding changed the logits by {diff}");
        // Without the mask on those positions the logits would change: the test can fail.
        let unmasked = model.classify_t(&other_ids, &other_ids.ones_like(), None, false).expect("classify");
        let reference = model.classify_t(&ids, &mask, None, false).expect("classify");
        assert!((reference - unmasked).abs().max().double_value(&[]) > 1e-4);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let model = tiny(Pooling::Mean);
        let (ids, mask) = batch();
        assert!(model.forward_t(&ids, &mask.narrow(1, 0, 5), None, false).is_err());
        assert!(model.forward_t(&ids.view([12]), &mask.view([12]), None, false).is_err());
        let hidden = Tensor::zeros([2, 6, 8], (Kind::Float, Device::Cpu));
        assert!(model.f_pool(&hidden, &mask).is_ok());
        assert!(model.f_classification_head(&model.f_pool(&hidden, &mask).expect("pool"), false).is_err());
        assert!(model.f_ner_head(&hidden, false).is_err());
        let bad = MultiTaskConfig { classification_labels: vec![], ner_labels: vec![], ..tiny_config(Pooling::Cls) };
        assert!(matches!(MultiTaskModel::new(bad, Device::Cpu), Err(HeadsError::InvalidConfig(_))));
    }

    #[test]
    fn a_model_of_one_task_has_that_head_only() {
        let (ids, mask) = batch();
        let ner_only = MultiTaskConfig { classification_labels: vec![], ..tiny_config(Pooling::Mean) };
        let model = MultiTaskModel::new(ner_only, Device::Cpu).expect("model");
        assert_eq!(model.tasks(), [Task::Ner]);
        assert!(model.named_parameters().iter().all(|(name, _)| !name.starts_with("classification_head")));
        let output = model.forward_t(&ids, &mask, None, false).expect("forward");
        assert!(output.classification_logits.is_none());
        assert_eq!(output.ner_logits.expect("ner").size(), [2, 6, 5]);
        let error = model.classify_t(&ids, &mask, None, false).unwrap_err();
        assert!(matches!(error, HeadsError::NoHead { task: Task::Classification }), "{error}");
        assert!(error.to_string().contains("no classification head"), "{error}");
        let classification_only = MultiTaskConfig { ner_labels: vec![], ..tiny_config(Pooling::Mean) };
        let model = MultiTaskModel::new(classification_only, Device::Cpu).expect("model");
        assert_eq!(model.tasks(), [Task::Classification]);
        assert!(model.tag_t(&ids, &mask, None, false).is_err());
        assert_eq!(model.classify_t(&ids, &mask, None, false).expect("classify").size(), [2, 3]);
    }

    #[test]
    fn missing_pretrained_dir_is_a_typed_error() {
        let err = MultiTaskModel::from_pretrained(
            Path::new("/nonexistent/model"),
            vec!["a".into()],
            vec!["O".into()],
            Pooling::Cls,
            Device::Cpu,
        )
        .unwrap_err();
        assert!(matches!(err, HeadsError::Encoder(_)), "{err}");
        assert!(err.to_string().contains("/nonexistent/model"), "{err}");
    }
}
