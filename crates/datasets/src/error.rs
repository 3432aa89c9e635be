//! The crate's error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in an input file something went wrong: the file, and where known the sheet and the row or line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The input file.
    pub path: PathBuf,
    /// The worksheet, for XLSX input (boxed: the error type stays small).
    pub sheet: Option<Box<str>>,
    /// The 1-based row (XLSX, CSV, TSV; header = row 1), or line (CoNLL, JSON lines: then `in_lines` is set).
    pub row: Option<u64>,
    /// Whether `row` counts lines of a line-oriented file (CoNLL, JSON lines) rather than rows of a table.
    pub in_lines: bool,
}

impl Location {
    /// A location naming only the file.
    pub fn file(path: &Path) -> Self {
        Self { path: path.to_path_buf(), sheet: None, row: None, in_lines: false }
    }

    /// The same location in the given sheet.
    pub fn with_sheet(mut self, sheet: impl Into<String>) -> Self {
        self.sheet = Some(sheet.into().into_boxed_str());
        self
    }

    /// The same location at the given 1-based table row.
    pub fn with_row(mut self, row: u64) -> Self {
        self.row = Some(row);
        self.in_lines = false;
        self
    }

    /// The same location at the given 1-based line (CoNLL, JSON lines).
    pub fn with_line(mut self, line: u64) -> Self {
        self.row = Some(line);
        self.in_lines = true;
        self
    }

    /// The 1-based line, for a line-oriented file.
    pub fn line(&self) -> Option<u64> {
        self.row.filter(|_| self.in_lines)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(sheet) = &self.sheet {
            write!(f, ", sheet {sheet:?}")?;
        }
        if let Some(row) = self.row {
            write!(f, ", {} {row}", if self.in_lines { "line" } else { "row" })?;
        }
        Ok(())
    }
}

/// Everything that can go wrong while loading, tokenizing, caching or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file (or sheet) holds no header row at all.
    #[error("{0}: the file is empty (no header row)")]
    EmptyFile(Location),
    /// Required columns are missing from the header.
    #[error("{location}: missing column(s) {missing:?}; columns found: {found:?}")]
    MissingColumns {
        /// File and sheet.
        location: Location,
        /// The required columns that were not found.
        missing: Vec<String>,
        /// The columns the header does have.
        found: Vec<String>,
    },
    /// The XLSX workbook could not be read (not a zip, truncated, bad XML, ...).
    #[error("{location}: unreadable XLSX: {message}")]
    Xlsx {
        /// File, and sheet where known.
        location: Location,
        /// What the XLSX reader reported.
        message: String,
    },
    /// The requested worksheet does not exist.
    #[error("{location}: no sheet named {sheet:?}; sheets found: {found:?}")]
    MissingSheet {
        /// The file.
        location: Location,
        /// The sheet asked for.
        sheet: String,
        /// The sheets the workbook has.
        found: Vec<String>,
    },
    /// A cell holds a value of a type that cannot stand for text here (a date, a boolean).
    #[error("{location}, column {column:?}: expected text or a number, found {found}")]
    CellType {
        /// File, sheet and row.
        location: Location,
        /// The column name.
        column: String,
        /// What the cell holds.
        found: String,
    },
    /// The CSV could not be parsed.
    #[error("{location}: bad CSV: {message}")]
    Csv {
        /// File and row.
        location: Location,
        /// What the CSV reader reported.
        message: String,
    },
    /// The text is not valid in the requested encoding.
    #[error("{location}: not valid {encoding}")]
    Encoding {
        /// The file.
        location: Location,
        /// The encoding that was asked for.
        encoding: &'static str,
    },
    /// A CoNLL line could not be understood.
    #[error("{location}: bad CoNLL line: {message}")]
    Conll {
        /// File and line.
        location: Location,
        /// What is wrong with the line.
        message: String,
    },
    /// A JSON-lines line could not be understood (not JSON, not an object, a field of the wrong type).
    #[error("{location}: bad JSON line: {message}")]
    Json {
        /// File and line.
        location: Location,
        /// What is wrong with the line.
        message: String,
    },
    /// A label (class or NER tag) outside the label set, in a file read strictly (a validation or test file
    /// against the training file's labels, see [`crate::UnknownLabels`]).
    #[error("{location}: label {label:?} is not in the training label set {known:?}")]
    UnknownLabel {
        /// File, and the row or line of the label (of its first occurrence, for NER tags in a table).
        location: Location,
        /// The label as the file has it.
        label: String,
        /// The labels that are known (label values for classification, tags for NER).
        known: Vec<String>,
    },
    /// A file gave no examples at all (empty, or every row dropped).
    #[error("no examples in {}: {why}", path.display())]
    NoExamples {
        /// The file.
        path: PathBuf,
        /// Why: what was read and dropped.
        why: String,
    },
    /// The file extension names no format supported for the task.
    #[error("{}: unsupported file type; accepted: {accepted}", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The extensions accepted for the task.
        accepted: &'static str,
    },
    /// An option or argument is invalid (a split that leaves no training data, ...).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The label set is not usable (duplicates, empty).
    #[error("invalid label set: {0}")]
    InvalidLabels(String),
    /// The tokenizer failed or lacks something this crate needs.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A batch could not be built (an index out of range, an empty batch).
    #[error("batch: {0}")]
    Batch(String),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Tensor(String),
    /// Writing the cache failed (reading problems are reported as a [`crate::CacheStatus`]).
    #[error("cache {path}: {message}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl DatasetError {
    /// An [`DatasetError::Io`] for `path`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

/// The crate's result type.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
