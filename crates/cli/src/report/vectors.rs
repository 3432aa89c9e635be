//! The console view of sentence vectors: the first values of each, and their cosine-similarity matrix.

use std::fmt::Write as _;
use tch::Tensor;

/// The console shows the vectors and similarities of at most this many texts.
pub const SHOWN_TEXTS: usize = 20;

/// The console shows this many leading values of each vector (fewer when the model is narrower).
const SHOWN_VALUES: i64 = 5;

/// One kind of vectors of the texts, titled for the console.
pub struct VectorTable {
    /// What they are (`CLS`, `Mean pooling`, `mean pooling, normalized`).
    pub title: String,
    /// `[texts, dimension]`.
    pub vectors: Tensor,
    /// `[texts, texts]` cosine similarities, computed only when they are shown (at most [`SHOWN_TEXTS`] texts): a
    /// matrix for every input would grow with the square of their number.
    pub similarity: Option<Tensor>,
}

impl VectorTable {
    /// The vectors of `texts` texts under `title`, with their similarities when there are few enough to show.
    pub fn new(title: impl Into<String>, vectors: Tensor, texts: usize) -> Self {
        let similarity = (texts <= SHOWN_TEXTS).then(|| encoder::cosine_similarity_matrix(&vectors));
        Self { title: title.into(), vectors, similarity }
    }
}

/// The first values of each vector, then the similarity matrices.
pub fn render(texts: &[&str], tables: &[VectorTable]) -> String {
    let mut out = String::new();
    for table in tables {
        let width = table.vectors.size().get(1).copied().unwrap_or(0);
        let _ = writeln!(out, "--- {} embeddings (first 5 of {width} values) ---", table.title);
        let shown_values = SHOWN_VALUES.min(width);
        for (i, text) in texts.iter().enumerate().take(SHOWN_TEXTS) {
            let row: Vec<f64> =
                Vec::try_from(table.vectors.get(i as i64).narrow(0, 0, shown_values).to_kind(tch::Kind::Double))
                    .unwrap_or_default();
            let values: Vec<String> = row.iter().map(|v| format!("{v:+.6}")).collect();
            let _ = writeln!(out, "{:>3}. {:<50} [{}, ...]", i + 1, shorten(text, 50), values.join(", "));
        }
        if texts.len() > SHOWN_TEXTS {
            let _ = writeln!(out, "     ... {} more (use --output to get them all)", texts.len() - SHOWN_TEXTS);
        }
        let _ = writeln!(out);
    }
    for table in tables {
        let Some(similarity) = &table.similarity else { break };
        let _ = writeln!(out, "--- Cosine similarity, {} ---", table.title);
        let _ = write!(out, "     ");
        for j in 0..texts.len() {
            let _ = write!(out, "{:>8}", j + 1);
        }
        let _ = writeln!(out);
        for i in 0..texts.len() {
            let _ = write!(out, "{:>3}. ", i + 1);
            for j in 0..texts.len() {
                let _ = write!(out, "{:>8.4}", similarity.double_value(&[i as i64, j as i64]));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }
    out
}

/// `text` in quotes, cut to `width` characters.
pub fn shorten(text: &str, width: usize) -> String {
    let quoted = format!("\"{text}\"");
    if quoted.chars().count() <= width {
        return quoted;
    }
    let cut: String = quoted.chars().take(width - 4).collect();
    format!("{cut}...\"")
}
