//! `cargo xtask bench`: runs the benchmark binaries (release profile) one process per measurement, collects their
//! JSON lines into `runs/bench/<UTC stamp>.json` with the machine's facts, and writes the tables with their targets to
//! `docs/benchmarks.md`.
//!
//! Sections: 1 `gemm` (fp32 GEMM ceiling), 2 `encoder` (throughput on the real data, ours and the notebook's way,
//! and a per-operation profile), 3 `training` (epoch cost by freezing strategy, with and without the feature cache),
//! 4 `pipeline` (the datasets pipeline and the entity scorer; the pandas script with `--peer`), 5 `peer` (Hugging
//! Face `transformers` on the same texts, with `--peer`), 6 `server` (`bertmt serve` under 1, 8 and 64 concurrent
//! clients against the offline embedder on the same sentences).
//!
//! Timing is only meaningful on a quiet machine: before each section the runner waits until the 1-minute load
//! average is below `--max-load`, and for every process it records the load before it and the CPU that *other*
//! processes used while it ran (from `/proc/stat`, minus the CPU time of the benchmark's own process tree).
//!
//! This file holds the command line, the sizes of a run and the order of the sections; the rest is split by job:
//! - [`sections`]: what each section builds and measures (the child processes and their arguments, the real data);
//! - [`runner`]: running those processes, collecting their JSON lines and failures, waiting for a quiet machine;
//! - [`python`]: the Python peers' interpreter (a venv in the per-user cache);
//! - [`machine`]: the machine's facts and its load (`/proc`);
//! - [`record`]: the run file `runs/bench/<stamp>.json` (typed), its stamp and date, earlier runs;
//! - [`render`]: the markdown block of each section from a run file;
//! - [`docs`]: `docs/benchmarks.md` (the blocks between their markers) and the quick run's page.

mod docs;
mod machine;
mod python;
mod record;
mod render;
mod runner;
mod sections;

use crate::setup;
use anyhow::{bail, Context, Result};
use record::{RunRecord, SectionLoad, Skipped};
use runner::Runner;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Also run the Python peers: Hugging Face `transformers` (section 5) and the pandas pipeline (section 4). The
    /// first use creates a venv in the per-user cache (`peer-venv`, about 2.7 GB download);
    /// `BERTMT_PEER_PYTHON=/path/to/python` uses an interpreter that has torch and transformers instead.
    #[arg(long)]
    pub peer: bool,
    /// Run one section only (its block of docs/benchmarks.md is replaced, the others are kept).
    #[arg(long, value_enum)]
    pub only: Option<Section>,
    /// Try it out: one repetition and a tenth of the texts; writes runs/bench/ only, not docs/benchmarks.md.
    #[arg(long)]
    pub quick: bool,
    /// The real data (classification_dataset.xlsx, ner_dataset.xlsx, ...); default `../shared/data` from the workspace.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Timed repetitions per measurement (default 3; 1 with --quick).
    #[arg(long)]
    pub reps: Option<usize>,
    /// libtorch threads for our binaries and the peer (default: libtorch's own choice, passed on to the peer).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Before each section, wait until the 1-minute load average is below this (0 to not wait).
    #[arg(long, default_value_t = 0.8)]
    pub max_load: f64,
    /// The longest wait for a quiet machine, in minutes; after it the section runs and its load is recorded.
    #[arg(long, default_value_t = 60)]
    pub max_wait_minutes: u64,
    /// Run nothing: rewrite docs/benchmarks.md from an earlier run's `runs/bench/<stamp>.json`.
    #[arg(long, value_name = "RUN_JSON")]
    pub render: Option<PathBuf>,
}

/// A section of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// 1. The FMA peak, and GEMM GFLOP/s on the model's shapes.
    Gemm,
    /// 2. Encoder throughput on the real data.
    Encoder,
    /// 3. Training cost per epoch.
    Training,
    /// 4. Data pipeline and entity scoring.
    Pipeline,
    /// 5. PyTorch (fp32, bf16 autocast) and ONNX Runtime on the same texts.
    Peer,
    /// 6. `bertmt serve` under concurrent clients, against the offline embedder.
    Server,
}

impl Section {
    /// Every section, in the order of docs/benchmarks.md.
    const ALL: [Section; 6] = [Self::Gemm, Self::Encoder, Self::Training, Self::Pipeline, Self::Peer, Self::Server];

    /// Its name on the command line, in the run file and in the markers of docs/benchmarks.md.
    fn key(self) -> &'static str {
        match self {
            Self::Gemm => "gemm",
            Self::Encoder => "encoder",
            Self::Training => "training",
            Self::Pipeline => "pipeline",
            Self::Peer => "peer",
            Self::Server => "server",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Self::Gemm => "## 1. Machine ceiling: FMA peak and GEMM",
            Self::Encoder => "## 2. Encoder throughput on the real data",
            Self::Training => "## 3. Training cost per epoch",
            Self::Pipeline => "## 4. Data pipeline and entity scoring",
            Self::Peer => "## 5. Peers: PyTorch (fp32, bf16) and ONNX Runtime",
            Self::Server => "## 6. Server: `bertmt serve` under concurrent clients",
        }
    }

    fn needs_data(self) -> bool {
        !matches!(self, Self::Gemm)
    }
}

/// Sizes of one run: the full benchmark or `--quick`.
struct Plan {
    reps: usize,
    imdb: usize,
    gmb: usize,
    notebook_imdb: usize,
    notebook_gmb: usize,
    notebook_reps: usize,
    heads_reviews: usize,
    encoder_training_reviews: usize,
    cached_epochs: usize,
    pipeline_runs: usize,
    pandas_runs: usize,
    /// pandas takes minutes per GMB step: one run each.
    pandas_ner_runs: usize,
    /// GMB sentences sent to the server (one a request) and embedded offline.
    server_sentences: usize,
}

impl Plan {
    fn new(args: &BenchArgs) -> Self {
        let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
        if args.quick {
            Self {
                reps,
                imdb: 200,
                gmb: 500,
                notebook_imdb: 200,
                notebook_gmb: 100,
                notebook_reps: 1,
                heads_reviews: 200,
                encoder_training_reviews: 48,
                cached_epochs: 3,
                pipeline_runs: reps,
                pandas_runs: 1,
                pandas_ner_runs: 1,
                server_sentences: 200,
            }
        } else {
            Self {
                reps,
                imdb: 2000,
                gmb: 5000,
                notebook_imdb: 2000,
                // Padded to 512, every GMB sentence costs the same: 1,000 give its rate as well as 5,000 would.
                notebook_gmb: 1000,
                notebook_reps: 1,
                heads_reviews: 2000,
                encoder_training_reviews: 2000,
                cached_epochs: 3,
                pipeline_runs: reps,
                pandas_runs: reps,
                pandas_ner_runs: 1,
                server_sentences: 2000,
            }
        }
    }
}

/// Runs `cargo xtask bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let root = setup::project_root();
    if let Some(file) = &args.render {
        return render_run_file(&root, file);
    }
    let env = setup::ensure()?;
    let plan = Plan::new(&args);
    let stamp = record::utc_stamp(SystemTime::now());
    let command_line = format!(
        "cargo xtask {}",
        std::env::args()
            .skip(1)
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let peer = args.peer || args.only == Some(Section::Peer);
    let sections: Vec<Section> = match args.only {
        Some(section) => vec![section],
        None => vec![Section::Gemm, Section::Encoder, Section::Training, Section::Pipeline, Section::Server],
    };

    // The real data: missing data skips the sections that need it, loudly.
    let data_dir = args.data_dir.clone().unwrap_or_else(|| root.join("../shared/data"));
    let data = sections::locate_data(&data_dir);
    if let Err(why) = &data {
        let skipped: Vec<&str> = sections.iter().filter(|s| s.needs_data()).map(|s| s.key()).collect();
        if !skipped.is_empty() {
            eprintln!("WARNING: {why}: skipping sections {} (pass --data-dir)", skipped.join(", "));
        }
    }

    // Build everything first, so that compiling never overlaps a measurement.
    sections::build(&env, &sections)?;

    let peer_python = if peer { Some(python::peer_python()?) } else { None };
    let scratch = std::env::temp_dir().join(format!("bertmt-bench-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let mut runner =
        Runner::new(&env, root.clone(), args.threads, args.max_load, Duration::from_secs(args.max_wait_minutes * 60));
    let mut texts: Option<(PathBuf, Value)> = None;
    let mut skipped: Vec<(Section, String)> = Vec::new();

    for &section in &sections {
        let files = match (&data, section.needs_data()) {
            (Err(why), true) => {
                skipped.push((section, why.clone()));
                continue;
            }
            (Ok(files), _) => Some(files),
            (Err(_), false) => None,
        };
        eprintln!("\n== bench section {} ==", section.key());
        runner.wait_for_quiet(section);
        match section {
            Section::Gemm => sections::gemm_section(&mut runner, &plan, peer_python.as_deref()),
            Section::Server => {
                if let Some((file, _)) = sections::texts(&mut runner, section, &mut texts, files, &plan, &scratch) {
                    sections::server_section(&mut runner, &plan, &file);
                }
            }
            Section::Encoder | Section::Peer => {
                let Some((file, info)) = sections::texts(&mut runner, section, &mut texts, files, &plan, &scratch)
                else {
                    continue;
                };
                let threads = args.threads.map(|t| t as i64).or_else(|| info["threads"].as_i64()).unwrap_or(1);
                let peer = peer_python.as_deref().map(|python| sections::Peer { python, threads });
                match (section, &peer) {
                    (Section::Peer, Some(peer)) => sections::peer_section(&mut runner, &plan, &file, peer),
                    (Section::Peer, None) => {}
                    _ => {
                        if peer.is_some() {
                            // The peer's runs are interleaved with ours (see `sections::encoder_section`).
                            let load = runner.section_loads.last().map_or(0.0, |(_, l)| *l);
                            runner.section_loads.push((Section::Peer, load));
                        }
                        sections::encoder_section(&mut runner, &plan, &file, peer.as_ref());
                    }
                }
            }
            Section::Training => {
                sections::training_section(&mut runner, &plan, files, peer_python.as_deref(), &scratch)
            }
            Section::Pipeline => sections::pipeline_section(&mut runner, &plan, files, peer_python.as_deref()),
        }
    }
    // Best effort: the scratch directory only holds the texts file.
    let _ = std::fs::remove_dir_all(&scratch);

    let machine = machine::facts(&env, &runner.results, &root);
    let record = RunRecord {
        command: Some(command_line),
        data_dir: data_dir.display().to_string(),
        date: Some(record::iso_date(SystemTime::now())),
        failures: runner.failures,
        machine,
        max_load: finite(args.max_load),
        peer_python: peer_python.as_ref().map(|p| p.display().to_string()),
        quick: args.quick,
        results: runner.results,
        section_loads: runner
            .section_loads
            .iter()
            .map(|(s, l)| SectionLoad { load_before: finite(*l), section: s.key().to_owned() })
            .collect(),
        skipped: skipped.iter().map(|(s, why)| Skipped { section: s.key().to_owned(), why: why.clone() }).collect(),
        stamp: Some(stamp.clone()),
    };
    let out_dir = root.join("runs/bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let name = if args.quick { format!("{stamp}-quick") } else { stamp.clone() };
    let json_path = out_dir.join(format!("{name}.json"));
    record::write(&json_path, &record)?;
    eprintln!("\nresults: {}", json_path.display());

    let blocks = render::Report { record: &record, root: &root, stamp: &stamp }.blocks();
    if args.quick {
        let path = out_dir.join(format!("{name}.md"));
        atomic_files::write(&path, docs::quick_page(&stamp, &blocks).as_bytes())?;
        eprintln!("tables (quick run, docs/benchmarks.md left alone): {}", path.display());
    } else {
        let path = root.join("docs/benchmarks.md");
        docs::update_docs(&path, &blocks)?;
        eprintln!("tables: {}", path.display());
    }
    for (section, why) in &skipped {
        eprintln!("skipped section {}: {why}", section.key());
    }
    if !record.failures.is_empty() {
        bail!("{} benchmark run(s) failed:\n  {}", record.failures.len(), record.failures.join("\n  "));
    }
    Ok(())
}

/// `--render`: the tables of an earlier run, written to docs/benchmarks.md.
fn render_run_file(root: &Path, file: &Path) -> Result<()> {
    let record = record::read(file)?;
    if record.quick {
        bail!("{} is a --quick run: its numbers are not for docs/benchmarks.md", file.display());
    }
    let stamp = record.stamp.clone().context("the run file has no stamp")?;
    let blocks = render::Report { record: &record, root, stamp: &stamp }.blocks();
    let path = root.join("docs/benchmarks.md");
    docs::update_docs(&path, &blocks)?;
    eprintln!("tables of run {stamp}: {}", path.display());
    Ok(())
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// A figure for the run file: JSON has no NaN or infinity (they were written as `null`, and are read back as such).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
