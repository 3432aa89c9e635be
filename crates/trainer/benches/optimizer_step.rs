//! Cost of one optimizer step over every value of the default model (strategy `all`, the fine-tuning recipe's
//! AdamW with weight decay 0.01), one JSON line: the fused update `trainer::Adam` makes, against the former update
//! written as one libtorch call per elementwise operation (kept here as the baseline), in the same process.
//!
//! ```text
//! cargo bench -p trainer --bench optimizer_step -- [--steps 30] [--model DIR] [--threads N]
//! ```
//! Relative paths, in flags and environment variables, are taken from the workspace root (cargo runs a bench in
//! its crate's directory).
//!
//! Gradients are random (a backward pass of `sum(param * noise)`), the same for both updates; the weights are the
//! pretrained ones. Step times are medians over `--steps` steps after 3 warm-up steps; clipping the global gradient
//! norm (what the training loop does before each step) is timed on its own.

use anyhow::{bail, Context, Result};
use heads::{FreezeStrategy, MultiTaskConfig, MultiTaskModel, ParamGroup};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use trainer::{Adam, OptimizerKind};

const WEIGHT_DECAY: f64 = 0.01;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The former update (one libtorch call per operation, several temporaries per parameter), for the comparison.
struct PerOpAdamW {
    params: Vec<(Tensor, Tensor, Tensor, bool)>,
    steps: i32,
}

impl PerOpAdamW {
    fn new(groups: &[ParamGroup]) -> Self {
        let params = groups
            .iter()
            .flat_map(|g| &g.parameters)
            .map(|(name, tensor)| {
                (tensor.shallow_clone(), tensor.zeros_like(), tensor.zeros_like(), heads::takes_weight_decay(name))
            })
            .collect();
        Self { params, steps: 0 }
    }

    fn step(&mut self, lr: f64) {
        self.steps += 1;
        let bias1 = 1.0 - 0.9f64.powi(self.steps);
        let bias2_sqrt = (1.0 - 0.999f64.powi(self.steps)).sqrt();
        tch::no_grad(|| {
            for (tensor, first, second, decays) in &mut self.params {
                let grad = tensor.grad();
                if *decays {
                    let _ = tensor.g_mul_scalar_(1.0 - lr * WEIGHT_DECAY);
                }
                let _ = first.lerp_(&grad, 0.1);
                let _ = second.g_mul_scalar_(0.999).addcmul_(&grad, &(&grad * 0.001));
                let mut denominator = second.sqrt();
                let _ = denominator.g_div_scalar_(bias2_sqrt).g_add_scalar_(1e-8);
                let _ = tensor.addcdiv_(&(&*first * (-lr / bias1)), &denominator);
            }
        });
    }
}

fn time_steps(steps: usize, mut step: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..3 {
        step()?;
    }
    let mut seconds = Vec::with_capacity(steps);
    for _ in 0..steps {
        let clock = Instant::now();
        step()?;
        seconds.push(clock.elapsed().as_secs_f64());
    }
    Ok(median(seconds))
}

fn main() {
    if let Err(error) = run() {
        eprintln!("trainer optimizer_step bench: {error:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let mut steps = 30usize;
    let root = workspace_root();
    let mut model_dir = std::env::var_os("BERTMT_MODEL")
        .map_or_else(|| root.join("data/models/all-MiniLM-L6-v2"), |dir| root.join(dir));
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--steps" => steps = value()?.parse().context("--steps")?,
            "--model" => model_dir = root.join(value()?),
            "--threads" => tch::set_num_threads(value()?.parse().context("--threads")?),
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    if !model_dir.join("config.json").is_file() {
        bail!("no model at {}: run `cargo xtask setup`, or pass --model", model_dir.display());
    }
    tch::manual_seed(0);
    let config = MultiTaskConfig::for_pretrained(
        &model_dir,
        vec!["negative".into(), "positive".into()],
        vec!["O".into(), "B-per".into(), "I-per".into()],
        encoder::Pooling::Mean,
    )?;
    let model = MultiTaskModel::from_pretrained_config(&model_dir, config, Device::Cpu)?;
    let groups = FreezeStrategy::All.apply(&model, 1e-4)?;
    let loss: Tensor =
        groups.iter().flat_map(|g| &g.parameters).map(|(_, p)| (p * p.randn_like()).sum(Kind::Float)).sum();
    loss.backward();
    let values: i64 = groups.iter().flat_map(|g| &g.parameters).map(|(_, p)| p.numel() as i64).sum();
    let tensors = groups.iter().map(|g| g.parameters.len()).sum::<usize>();

    let mut per_op = PerOpAdamW::new(&groups);
    let per_op_seconds = time_steps(steps, || {
        per_op.step(1e-4);
        Ok(())
    })?;
    drop(per_op);
    let mut fused = Adam::new(groups, OptimizerKind::AdamW { weight_decay: WEIGHT_DECAY });
    let fused_seconds = time_steps(steps, || Ok(fused.step(1.0)?))?;
    let clip_seconds = time_steps(steps, || fused.clip_grad_norm(f64::INFINITY).map(drop).map_err(Into::into))?;
    let ms = |s: f64| (s * 1e6).round() / 1e3;
    println!(
        "{}",
        json!({
            "bench": "trainer.optimizer",
            "model": model_dir.file_name().map(|n| n.to_string_lossy().into_owned()),
            "values": values,
            "tensors": tensors,
            "steps": steps,
            "threads": tch::get_num_threads(),
            "per_op_ms": ms(per_op_seconds),
            "fused_ms": ms(fused_seconds),
            "clip_ms": ms(clip_seconds),
            "speedup": (per_op_seconds / fused_seconds * 100.0).round() / 100.0,
        })
    );
    Ok(())
}
