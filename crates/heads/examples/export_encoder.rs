//! Exports the encoder of a multi-task model as a Hugging Face BERT directory, with reference outputs to compare
//! against Python `transformers`.
//!
//! ```text
//! cargo run -p heads --example export_encoder -- MODEL_DIR OUT_DIR [--random]
//! ```
//!
//! Builds a multi-task model from the pretrained `MODEL_DIR` (or, with `--random`, a randomly initialised one of
//! the same configuration, so the export cannot be a copy of the original weights), exports its encoder to
//! `OUT_DIR/encoder` and writes `OUT_DIR/reference.safetensors` with `input_ids`, `attention_mask` and our
//! `last_hidden_state` for a few padded sentences.

use anyhow::{bail, Context};
use encoder::{pad_batch, BertConfig, BertTokenizer, Pooling};
use heads::{MultiTaskConfig, MultiTaskModel};
use std::path::PathBuf;
use tch::{Device, Tensor};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let random = args.iter().any(|arg| arg == "--random");
    let paths: Vec<&String> = args.iter().filter(|arg| !arg.starts_with("--")).collect();
    let [model_dir, out_dir] = paths.as_slice() else {
        bail!("usage: export_encoder MODEL_DIR OUT_DIR [--random]");
    };
    let (model_dir, out_dir) = (PathBuf::from(model_dir), PathBuf::from(out_dir));
    let classes = vec!["negative".to_string(), "positive".to_string()];
    let tags = vec!["O".to_string(), "B-PER".to_string(), "I-PER".to_string()];
    let model = if random {
        tch::manual_seed(1234);
        let config = BertConfig::from_file(&model_dir.join("config.json"))?;
        MultiTaskModel::new(MultiTaskConfig::new(config, classes, tags, Pooling::Mean), Device::Cpu)?
    } else {
        MultiTaskModel::from_pretrained(&model_dir, classes, tags, Pooling::Mean, Device::Cpu)?
    };
    let export = out_dir.join("encoder");
    model.export_encoder(&export, &model_dir)?;

    let tokenizer = BertTokenizer::from_dir(&model_dir, 512)?;
    let texts = ["A man is eating food.", "Hi", "The quick brown fox jumps over the lazy dog near the river bank."];
    let encodings = tokenizer.encode_texts(&texts)?;
    let ids: Vec<&[u32]> = encodings.iter().map(|encoding| encoding.get_ids()).collect();
    let (input_ids, mask) = pad_batch(&ids, tokenizer.pad_id(), Device::Cpu);
    let hidden = tch::no_grad(|| model.encode_t(&input_ids, &mask, None, false))?;
    let reference = out_dir.join("reference.safetensors");
    let tensors: [(&str, &Tensor); 3] =
        [("input_ids", &input_ids), ("attention_mask", &mask), ("last_hidden_state", &hidden)];
    Tensor::write_safetensors(&tensors, &reference).with_context(|| reference.display().to_string())?;
    println!("exported {} and wrote {}", export.display(), reference.display());
    Ok(())
}
