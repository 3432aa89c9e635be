//! The pages the blocks go to: `docs/benchmarks.md` (each block between its `<!-- bench:KEY -->` markers, the
//! hand-written rest kept) and the page of a `--quick` run.

use super::Section;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The heading of a block: its section's, or `## Machine`.
fn heading(key: &str) -> &'static str {
    Section::ALL.into_iter().find(|s| s.key() == key).map_or("## Machine", |s| s.heading())
}

/// Replaces the blocks between `<!-- bench:KEY -->` and `<!-- /bench:KEY -->` in `path` (creating the file from a
/// template when missing); everything outside the blocks (hand-written notes) is kept.
pub(super) fn update_docs(path: &Path, blocks: &[(String, String)]) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => template(),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    for (key, block) in blocks {
        let (open, close) = (format!("<!-- bench:{key} -->"), format!("<!-- /bench:{key} -->"));
        let replacement = format!("{open}\n{block}\n{close}");
        match (text.find(&open), text.find(&close)) {
            (Some(start), Some(end)) if end > start => text.replace_range(start..end + close.len(), &replacement),
            _ => {
                let _ = write!(text, "\n{}\n\n{replacement}\n", heading(key));
            }
        }
    }
    Ok(atomic_files::write(path, text.as_bytes())?)
}

fn template() -> String {
    let mut text = String::from(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (`xtask/src/bench/`) from the JSON of its runs in `runs/bench/`. Each block \
         below says when, with which command and under what load it was measured; `cargo xtask bench --only SECTION` \
         replaces one block and keeps the others. The notes at the end are written by hand and kept.\n\n\
         ## Machine\n\n<!-- bench:machine -->\nnot measured yet\n<!-- /bench:machine -->\n",
    );
    for section in Section::ALL {
        let key = section.key();
        let _ =
            write!(text, "\n{}\n\n<!-- bench:{key} -->\nnot measured yet\n<!-- /bench:{key} -->\n", section.heading());
    }
    text.push_str("\n## Notes\n\n");
    text
}

/// The page of a `--quick` run (`runs/bench/<stamp>-quick.md`): its blocks under their headings.
pub(super) fn quick_page(stamp: &str, blocks: &[(String, String)]) -> String {
    let mut text = format!("# Quick benchmark run {stamp} (not for reporting: fewer texts and repetitions)\n\n");
    for (key, block) in blocks {
        let _ = write!(text, "{}\n\n{block}\n", heading(key));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_blocks_are_replaced_and_notes_kept() {
        let dir = std::env::temp_dir().join(format!("bertmt-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let path = dir.join("benchmarks.md");
        update_docs(&path, &[("gemm".into(), "first".into())]).expect("written");
        let mut text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.contains("<!-- bench:gemm -->\nfirst\n<!-- /bench:gemm -->"));
        assert!(text.contains("<!-- bench:training -->\nnot measured yet"));
        text.push_str("A hand-written note.\n");
        std::fs::write(&path, text).expect("written");
        update_docs(&path, &[("gemm".into(), "second".into()), ("machine".into(), "facts".into())]).expect("written");
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.contains("<!-- bench:gemm -->\nsecond\n<!-- /bench:gemm -->") && !text.contains("first"));
        assert!(text.contains("<!-- bench:machine -->\nfacts\n"));
        assert!(text.ends_with("A hand-written note.\n"));
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn missing_markers_are_appended_under_their_heading() {
        let dir = std::env::temp_dir().join(format!("bertmt-bench-docs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let path = dir.join("benchmarks.md");
        std::fs::write(&path, "# Benchmarks\n").expect("written");
        update_docs(&path, &[("pipeline".into(), "table".into())]).expect("written");
        let text = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(
            text,
            "# Benchmarks\n\n## 4. Data pipeline and entity scoring\n\n<!-- bench:pipeline -->\ntable\n\
             <!-- /bench:pipeline -->\n"
        );
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn quick_page_has_the_blocks_under_their_headings() {
        let page = quick_page("20240229T123456Z", &[("machine".into(), "m".into()), ("peer".into(), "p".into())]);
        assert_eq!(
            page,
            "# Quick benchmark run 20240229T123456Z (not for reporting: fewer texts and repetitions)\n\n\
             ## Machine\n\nm\n## 5. Peers: PyTorch (fp32, bf16) and ONNX Runtime\n\np\n"
        );
    }
}
