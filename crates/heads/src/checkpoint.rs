//! Checkpoints of a multi-task model, and export of its encoder as a Hugging Face BERT directory.
//!
//! A checkpoint directory holds `model.safetensors` (every variable under its `VarStore` name),
//! `checkpoint.json` ([`CheckpointMeta`]: format version, configuration, labels, pooling, head dropout, freezing
//! strategy) and the tokenizer files, so it is all a prediction needs. Every file is written into a temporary
//! directory beside the target and synced, then that directory takes the target's place in one atomic exchange
//! ([`atomic_files::StagedDir`]): a crash leaves the old checkpoint or the new one, whole.

use crate::config::MultiTaskConfig;
use crate::error::{HeadsError, Result};
use crate::freeze::FreezeStrategy;
use crate::model::MultiTaskModel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// The checkpoint format this build writes and reads.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;
/// The checkpoint's description file.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// The weight file of checkpoints and exported encoders.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The Hugging Face configuration file of an exported encoder.
pub const HF_CONFIG_FILE: &str = "config.json";
/// Tokenizer files copied into checkpoints and exports when the tokenizer directory has them (it needs at least
/// `tokenizer.json` or `vocab.txt`).
pub const TOKENIZER_FILES: [&str; 4] =
    ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// The contents of `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The model configuration (encoder config, label lists, pooling, head dropout), flattened into the file.
    #[serde(flatten)]
    pub config: MultiTaskConfig,
    /// The freezing strategy the model was trained with, if the trainer said.
    #[serde(default)]
    pub freeze_strategy: Option<FreezeStrategy>,
}

impl CheckpointMeta {
    /// Reads and checks `dir/checkpoint.json`: the format version first, then the rest.
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(HeadsError::MissingCheckpointFile { dir: dir.to_path_buf(), what: "the directory".into() });
        }
        let path = dir.join(CHECKPOINT_FILE);
        if !path.is_file() {
            return Err(HeadsError::MissingCheckpointFile { dir: dir.to_path_buf(), what: CHECKPOINT_FILE.into() });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| HeadsError::io(&path, source))?;
        let json = |source| HeadsError::Json { path: path.clone(), source };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(json)?;
        let found = value.get("format_version").and_then(serde_json::Value::as_u64).ok_or_else(|| {
            json(<serde_json::Error as serde::de::Error>::custom("no numeric `format_version` field"))
        })?;
        if found != u64::from(CHECKPOINT_FORMAT_VERSION) {
            return Err(HeadsError::UnsupportedFormat {
                path: path.clone(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
                expected: CHECKPOINT_FORMAT_VERSION,
            });
        }
        let meta: Self = serde_json::from_value(value).map_err(json)?;
        meta.config.validate().map_err(|error| HeadsError::InvalidConfig(format!("{}: {error}", path.display())))?;
        Ok(meta)
    }
}

impl MultiTaskModel {
    /// Saves a self-contained checkpoint into `dir` (created if needed; an older checkpoint or export there is
    /// replaced whole in one atomic exchange; a directory holding other files is refused): `model.safetensors`, `checkpoint.json` (with `freeze_strategy` if
    /// given) and the tokenizer files of `tokenizer_dir` (the pretrained model's directory, or another checkpoint).
    pub fn save(&self, dir: &Path, tokenizer_dir: &Path, freeze_strategy: Option<FreezeStrategy>) -> Result<()> {
        let staging = Staging::new(dir)?;
        staging.copy_tokenizer(tokenizer_dir)?;
        let tensors = cpu_tensors(self.named_parameters())?;
        staging.write_safetensors(WEIGHTS_FILE, &tensors)?;
        let meta = CheckpointMeta {
            format_version: CHECKPOINT_FORMAT_VERSION,
            config: self.config().clone(),
            freeze_strategy,
        };
        staging.write_json(CHECKPOINT_FILE, &meta)?;
        staging.commit()?;
        tracing::info!(dir = %dir.display(), tensors = tensors.len(), "checkpoint saved");
        Ok(())
    }

    /// Loads a checkpoint written by [`save`](Self::save) onto `device`: checks the format version, builds the
    /// model from `checkpoint.json` and copies every tensor, checking names and shapes.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let meta = CheckpointMeta::read(dir)?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            return Err(HeadsError::MissingCheckpointFile { dir: dir.to_path_buf(), what: WEIGHTS_FILE.into() });
        }
        let model = Self::new(meta.config, device)?;
        let tensors = Tensor::read_safetensors(&weights)
            .map_err(|error| HeadsError::InvalidWeights { file: weights.clone(), message: error.to_string() })?;
        model.copy_all(tensors, &weights)?;
        tracing::info!(dir = %dir.display(), strategy = ?meta.freeze_strategy, "checkpoint loaded");
        Ok(model)
    }

    /// Copies `tensors` into the variables: every variable must be there with its shape, and nothing else (the
    /// encoder's strict copy, [`encoder::copy_exactly`]).
    fn copy_all(&self, tensors: Vec<(String, Tensor)>, file: &Path) -> Result<()> {
        encoder::copy_exactly(self.named_parameters(), tensors.into_iter().collect(), file)?;
        Ok(())
    }

    /// Exports the encoder as a Hugging Face BERT directory in `dir`: `config.json` (`"model_type": "bert"`,
    /// `"architectures": ["BertModel"]` and the configuration), `model.safetensors` with only the encoder tensors
    /// under their Hugging Face names (no pooler), and the tokenizer files of `tokenizer_dir`. It loads with
    /// `transformers.BertModel.from_pretrained(dir)` and [`encoder::load_pretrained`].
    pub fn export_encoder(&self, dir: &Path, tokenizer_dir: &Path) -> Result<()> {
        let staging = Staging::new(dir)?;
        staging.copy_tokenizer(tokenizer_dir)?;
        let encoder_tensors: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .filter(|(name, _)| encoder::model::EncoderPart::of_variable(name).is_some())
            .collect();
        let tensors = cpu_tensors(encoder_tensors)?;
        staging.write_safetensors(WEIGHTS_FILE, &tensors)?;
        let config_path = staging.path(HF_CONFIG_FILE);
        let mut config = match serde_json::to_value(&self.config().encoder) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => serde_json::Map::new(),
            Err(source) => return Err(HeadsError::Json { path: config_path, source }),
        };
        config.insert("model_type".into(), "bert".into());
        config.insert("architectures".into(), serde_json::json!(["BertModel"]));
        config.insert("position_embedding_type".into(), "absolute".into());
        staging.write_json(HF_CONFIG_FILE, &config)?;
        staging.commit()?;
        tracing::info!(dir = %dir.display(), tensors = tensors.len(), "encoder exported");
        Ok(())
    }
}

/// The tensors on the CPU and contiguous, as safetensors needs them.
fn cpu_tensors(tensors: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
    tensors.into_iter().map(|(name, tensor)| Ok((name, tensor.f_to_device(Device::Cpu)?.f_contiguous()?))).collect()
}

/// A checkpoint or export being written: an [`atomic_files::StagedDir`] that takes the target's place whole.
struct Staging(atomic_files::StagedDir);

impl Staging {
    /// Starts writing `target`. An existing target may hold only the files a checkpoint or an export consists of:
    /// it is replaced whole, so anything else in it would be lost.
    fn new(target: &Path) -> Result<Self> {
        if let Ok(entries) = std::fs::read_dir(target) {
            let mut foreign: Vec<String> = entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !is_own_file(name))
                .collect();
            if !foreign.is_empty() {
                foreign.sort();
                return Err(HeadsError::InvalidInput(format!(
                    "{} holds files that are not part of a checkpoint or an exported encoder ({}); saving replaces \
                     the directory whole, so choose a new or empty one",
                    target.display(),
                    foreign.join(", ")
                )));
            }
        }
        Ok(Self(atomic_files::StagedDir::new(target)?))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }

    fn write_json(&self, file: &str, value: &impl Serialize) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|source| HeadsError::Json { path: self.0.target().join(file), source })?;
        Ok(self.0.write(file, format!("{text}\n").as_bytes())?)
    }

    fn write_safetensors(&self, file: &str, tensors: &[(String, Tensor)]) -> Result<()> {
        Tensor::write_safetensors(tensors, self.path(file))?;
        Ok(self.0.sync_file(file)?)
    }

    /// Copies the tokenizer files `dir` has.
    fn copy_tokenizer(&self, dir: &Path) -> Result<()> {
        if !dir.join("tokenizer.json").is_file() && !dir.join("vocab.txt").is_file() {
            return Err(HeadsError::MissingTokenizer { dir: dir.to_path_buf() });
        }
        for file in TOKENIZER_FILES {
            let source = dir.join(file);
            if source.is_file() {
                let bytes = std::fs::read(&source).map_err(|error| HeadsError::io(&source, error))?;
                self.0.write(file, &bytes)?;
            }
        }
        Ok(())
    }

    /// Puts the staged directory in the target's place in one atomic exchange.
    fn commit(self) -> Result<()> {
        Ok(self.0.commit()?)
    }
}

/// Whether `name` is a file a checkpoint or an exported encoder may hold.
fn is_own_file(name: &str) -> bool {
    TOKENIZER_FILES.contains(&name) || [WEIGHTS_FILE, CHECKPOINT_FILE, HF_CONFIG_FILE].contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{batch, tiny, tiny_config};
    use encoder::Pooling;
    use tch::nn;

    /// A tokenizer directory with a small vocabulary.
    fn tokenizer_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"].join("\n");
        std::fs::write(dir.path().join("vocab.txt"), vocab).expect("vocab");
        std::fs::write(dir.path().join("tokenizer_config.json"), r#"{"do_lower_case": true}"#).expect("config");
        dir
    }

    fn saved(pooling: Pooling) -> (MultiTaskModel, tempfile::TempDir, PathBuf) {
        let model = tiny(pooling);
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("checkpoint");
        model.save(&dir, tokenizer_dir().path(), Some(FreezeStrategy::OutputLayers(1))).expect("save");
        (model, root, dir)
    }

    #[test]
    fn save_then_load_gives_bit_identical_logits() {
        for pooling in [Pooling::Cls, Pooling::Mean] {
            let (model, _root, dir) = saved(pooling);
            for file in [WEIGHTS_FILE, CHECKPOINT_FILE, "vocab.txt", "tokenizer_config.json"] {
                assert!(dir.join(file).is_file(), "{file}");
            }
            let leftovers: Vec<_> = std::fs::read_dir(dir.parent().expect("parent"))
                .expect("list")
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_name().to_string_lossy().contains(".tmp-"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            let meta = CheckpointMeta::read(&dir).expect("meta");
            assert_eq!(meta.config, *model.config());
            assert_eq!(meta.freeze_strategy, Some(FreezeStrategy::OutputLayers(1)));
            let loaded = MultiTaskModel::load(&dir, Device::Cpu).expect("load");
            let (ids, mask) = batch();
            let before = model.forward_t(&ids, &mask, None, false).expect("forward");
            let after = loaded.forward_t(&ids, &mask, None, false).expect("forward");
            let same = |a: Option<Tensor>, b: Option<Tensor>| a.zip(b).is_some_and(|(a, b)| a.equal(&b));
            assert!(same(before.classification_logits, after.classification_logits), "{pooling}");
            assert!(same(before.ner_logits, after.ner_logits), "{pooling}");
            // The checkpoint is self-contained for prediction: its tokenizer loads.
            assert!(encoder::BertTokenizer::from_dir(&dir, 16).is_ok());
        }
    }

    #[test]
    fn saving_over_a_checkpoint_replaces_it_whole() {
        let (_, root, dir) = saved(Pooling::Mean);
        tch::manual_seed(99);
        let other = MultiTaskModel::new(tiny_config(Pooling::Mean), Device::Cpu).expect("model");
        // The new tokenizer directory has no tokenizer_config.json: the old one must not linger.
        let tokenizer = tokenizer_dir();
        std::fs::remove_file(tokenizer.path().join("tokenizer_config.json")).expect("remove");
        other.save(&dir, tokenizer.path(), None).expect("save again");
        assert!(dir.join("vocab.txt").is_file() && !dir.join("tokenizer_config.json").exists());
        let loaded = MultiTaskModel::load(&dir, Device::Cpu).expect("load");
        let (ids, mask) = batch();
        let expected = other.classify_t(&ids, &mask, None, false).expect("classify");
        assert!(loaded.classify_t(&ids, &mask, None, false).expect("classify").equal(&expected));
        assert_eq!(CheckpointMeta::read(&dir).expect("meta").freeze_strategy, None);
        let left: Vec<_> =
            std::fs::read_dir(root.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, ["checkpoint"], "no staging directory is left beside it");
    }

    #[test]
    fn a_directory_with_other_files_is_not_replaced() {
        let (model, _root, dir) = saved(Pooling::Mean);
        std::fs::write(dir.join("notes.txt"), "mine").expect("write");
        let error = model.save(&dir, tokenizer_dir().path(), None).unwrap_err().to_string();
        assert!(error.contains("notes.txt") && error.contains("new or empty"), "{error}");
        let error = model.export_encoder(&dir, tokenizer_dir().path()).unwrap_err().to_string();
        assert!(error.contains("notes.txt"), "{error}");
        assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).expect("notes"), "mine");
        MultiTaskModel::load(&dir, Device::Cpu).expect("the checkpoint is still there");
    }

    /// Set in the child process of [`a_save_killed_at_any_moment_leaves_a_whole_checkpoint`]: the directory to save
    /// into, over and over, until killed.
    const SAVE_LOOP_DIR: &str = "HEADS_TEST_SAVE_LOOP_DIR";

    /// Saves checkpoint after checkpoint into `dir`, every parameter of save k set to k, until the process is killed.
    fn save_until_killed(dir: &Path) -> ! {
        let model = tiny(Pooling::Mean);
        let tokenizer = tokenizer_dir();
        for k in 1.. {
            tch::no_grad(|| {
                for (_, variable) in model.named_parameters() {
                    let _ = variable.shallow_clone().fill_(f64::from(k));
                }
            });
            model.save(dir, tokenizer.path(), None).expect("save");
        }
        unreachable!("the loop ends when the process is killed")
    }

    #[test]
    #[cfg(unix)]
    fn a_save_killed_at_any_moment_leaves_a_whole_checkpoint() {
        if let Some(dir) = std::env::var_os(SAVE_LOOP_DIR) {
            save_until_killed(Path::new(&dir));
        }
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("checkpoint");
        for kill in 0..8u64 {
            let spawned = std::time::SystemTime::now();
            let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args(["--exact", "checkpoint::tests::a_save_killed_at_any_moment_leaves_a_whole_checkpoint"])
                .env(SAVE_LOOP_DIR, &dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn");
            // Wait for the first save of this child (the directory in place was made after the spawn), then let it
            // save for a while longer, a different time each round.
            let saved_since_spawn =
                || std::fs::metadata(&dir).and_then(|m| m.modified()).is_ok_and(|modified| modified > spawned);
            let started = std::time::Instant::now();
            while !saved_since_spawn() {
                assert!(started.elapsed() < std::time::Duration::from_secs(60), "the child never saved");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            std::thread::sleep(std::time::Duration::from_millis(37 * kill + 11));
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
            let loaded = MultiTaskModel::load(&dir, Device::Cpu).expect("a whole checkpoint after the kill");
            let values: Vec<f64> = loaded
                .named_parameters()
                .iter()
                .flat_map(|(_, v)| [v.min().double_value(&[]), v.max().double_value(&[])])
                .collect();
            let k = values[0];
            assert!(values.iter().all(|&v| v == k), "weights of two saves mixed: {values:?}");
            assert!(k >= 1.0, "a save of the child");
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["checkpoint.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]);
        }
        // Kills mid-save leave staging directories beside the checkpoint; once stale, the next save removes them.
        let beside = || -> Vec<PathBuf> {
            std::fs::read_dir(root.path())
                .expect("list")
                .map(|e| e.expect("entry").path())
                .filter(|p| *p != dir)
                .collect()
        };
        let partials = beside();
        assert!(!partials.is_empty(), "no kill landed inside a save");
        let an_hour_ago = std::time::SystemTime::now() - atomic_files::STALE_AFTER;
        for partial in &partials {
            std::fs::File::open(partial).and_then(|f| f.set_modified(an_hour_ago)).expect("backdate");
        }
        let (model, _, _) = saved(Pooling::Cls);
        model.save(&dir, tokenizer_dir().path(), None).expect("save after the kills");
        MultiTaskModel::load(&dir, Device::Cpu).expect("load");
        assert_eq!(beside(), Vec::<PathBuf>::new());
    }

    #[test]
    fn missing_tensor_is_named() {
        let (model, _root, dir) = saved(Pooling::Cls);
        let kept: Vec<(String, Tensor)> =
            model.named_parameters().into_iter().filter(|(name, _)| name != "ner_head.bias").collect();
        Tensor::write_safetensors(&kept, dir.join(WEIGHTS_FILE)).expect("write");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        assert!(
            matches!(&err, HeadsError::Encoder(encoder::EncoderError::MissingTensor { name, .. }) if name == "ner_head.bias"),
            "{err}"
        );
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }

    #[test]
    fn unexpected_tensor_is_named() {
        let (model, _root, dir) = saved(Pooling::Cls);
        let mut tensors = model.named_parameters();
        tensors.push(("pooler.dense.bias".into(), Tensor::zeros([16], (tch::Kind::Float, Device::Cpu))));
        Tensor::write_safetensors(&tensors, dir.join(WEIGHTS_FILE)).expect("write");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("pooler.dense.bias"), "{err}");
    }

    #[test]
    fn checkpoint_of_another_configuration_is_a_shape_mismatch() {
        let (_, _root, dir) = saved(Pooling::Cls);
        // Claim 4 NER labels where the weights have 5.
        let path = dir.join(CHECKPOINT_FILE);
        let mut meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        meta["ner_labels"] = serde_json::json!(["O", "B-PER", "I-PER", "B-LOC"]);
        std::fs::write(&path, meta.to_string()).expect("write");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        match &err {
            HeadsError::Encoder(encoder::EncoderError::ShapeMismatch { name, expected, found, .. }) => {
                assert!(name.starts_with("ner_head."), "{err}");
                assert_eq!((expected[0], found[0]), (4, 5));
            }
            other => panic!("expected a shape mismatch, got {other}"),
        }
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }

    #[test]
    fn corrupt_or_missing_files_are_clear_errors() {
        let (_, root, dir) = saved(Pooling::Cls);
        let missing = root.path().join("nowhere");
        let err = MultiTaskModel::load(&missing, Device::Cpu).unwrap_err();
        assert!(matches!(err, HeadsError::MissingCheckpointFile { .. }), "{err}");
        assert!(err.to_string().contains("nowhere"), "{err}");

        let path = dir.join(CHECKPOINT_FILE);
        let good = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, &good[..good.len() / 2]).expect("truncate");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        assert!(matches!(err, HeadsError::Json { .. }), "{err}");
        assert!(err.to_string().contains("checkpoint.json"), "{err}");

        std::fs::write(&path, good.replace("\"format_version\": 1", "\"format_version\": 7")).expect("write");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        assert!(matches!(err, HeadsError::UnsupportedFormat { found: 7, expected: 1, .. }), "{err}");

        std::fs::write(&path, good.replace("\"pooling\": \"cls\"", "\"pooling\": \"median\"")).expect("write");
        assert!(matches!(MultiTaskModel::load(&dir, Device::Cpu), Err(HeadsError::Json { .. })));

        std::fs::write(&path, &good).expect("restore");
        std::fs::write(dir.join(WEIGHTS_FILE), b"not safetensors").expect("garble");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        assert!(matches!(err, HeadsError::InvalidWeights { .. }), "{err}");

        std::fs::remove_file(dir.join(WEIGHTS_FILE)).expect("remove");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("missing model.safetensors"), "{err}");

        std::fs::remove_file(&path).expect("remove");
        let err = MultiTaskModel::load(&dir, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("missing checkpoint.json"), "{err}");
    }

    #[test]
    fn saving_needs_a_tokenizer() {
        let model = tiny(Pooling::Cls);
        let root = tempfile::tempdir().expect("tempdir");
        let empty = tempfile::tempdir().expect("tempdir");
        let err = model.save(&root.path().join("c"), empty.path(), None).unwrap_err();
        assert!(matches!(err, HeadsError::MissingTokenizer { .. }), "{err}");
        assert!(!root.path().join("c").exists());
    }

    #[test]
    fn exported_encoder_reloads_bit_identically() {
        let model = tiny(Pooling::Mean);
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("export");
        model.export_encoder(&dir, tokenizer_dir().path()).expect("export");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(HF_CONFIG_FILE)).expect("read")).expect("json");
        assert_eq!(config["model_type"], "bert");
        assert_eq!(config["architectures"], serde_json::json!(["BertModel"]));
        assert_eq!(config["hidden_size"], 16);
        let names: Vec<String> =
            Tensor::read_safetensors(dir.join(WEIGHTS_FILE)).expect("read").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 5 + 16 * 2);
        assert!(names.iter().all(|name| !name.contains("_head")));

        let vs = nn::VarStore::new(Device::Cpu);
        let (reloaded, report) = encoder::load_pretrained(&vs, &dir).expect("load_pretrained");
        assert_eq!(report.copied, 37);
        assert!(report.skipped.is_empty());
        let (ids, mask) = batch();
        let ours = model.encode_t(&ids, &mask, None, false).expect("encode");
        let theirs = reloaded.forward_t(&ids, Some(&mask), None, false).expect("forward").last_hidden_state;
        assert!(ours.equal(&theirs));

        // The export is a pretrained directory for a new multi-task model too.
        let labels = model.config().classification_labels.clone();
        let tags = model.config().ner_labels.clone();
        let fresh = MultiTaskModel::from_pretrained(&dir, labels, tags, Pooling::Cls, Device::Cpu).expect("pretrained");
        assert!(fresh.encode_t(&ids, &mask, None, false).expect("encode").equal(&ours));
        assert_eq!(fresh.config().head_dropout, model.config().encoder.hidden_dropout_prob);
    }
}
