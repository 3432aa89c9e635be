//! Input file formats and text encodings.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Location, Result};

/// The layout of an input file, normally chosen from its extension and the task
/// ([`for_classification`](Self::for_classification), [`for_ner`](Self::for_ner)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileFormat {
    /// An Excel workbook (`.xlsx`, `.xlsm`).
    Xlsx,
    /// Comma-separated values with a header (`.csv`, or gzip-compressed `.csv.gz`).
    Csv {
        /// Whether the file is gzip-compressed.
        gzip: bool,
    },
    /// Tab-separated values with a header (`.tsv`, `.tsv.gz` for classification). No quoting: a field holds no tab
    /// or line break, and quotes are part of the text (IANA `text/tab-separated-values`, GLUE's files).
    Tsv {
        /// Whether the file is gzip-compressed.
        gzip: bool,
    },
    /// JSON lines (`.jsonl`, `.ndjson`, optionally `.gz`): one JSON object a line (blank lines skipped).
    /// Classification: a text and a label field; NER: `tokens` and `ner_tags` lists (Hugging Face datasets' layout).
    JsonLines {
        /// Whether the file is gzip-compressed.
        gzip: bool,
    },
    /// CoNLL-style token-per-line text (`.conll`, `.txt`, `.bio`, `.iob`, and `.tsv` for NER, optionally `.gz`):
    /// `token<TAB>tag` or whitespace-separated columns with the tag last, sentences separated by blank lines.
    Conll {
        /// Whether the file is gzip-compressed.
        gzip: bool,
    },
}

/// What [`FileFormat::for_classification`] accepts.
const CLASSIFICATION_FORMATS: &str =
    ".csv, .tsv, .jsonl or .ndjson (each optionally .gz), .xlsx; or set the format in the options";
/// What [`FileFormat::for_ner`] accepts.
const NER_FORMATS: &str = ".xlsx or .csv (Kaggle layout: Sentence #, Word, Tag), CoNLL .conll/.txt/.tsv/.bio/.iob, \
                           .jsonl or .ndjson (tokens, ner_tags), each but .xlsx optionally .gz; or set the format in \
                           the options";

/// The lower-case extension of `path` (the part after the last dot, `.gz` removed) and whether it ended in `.gz`.
fn extension(path: &Path) -> (String, bool) {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name.as_str(), false),
    };
    (stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("").to_owned(), gzip)
}

impl FileFormat {
    /// The format of a classification file, from `path`'s extension (case-insensitive): `.tsv` is a table.
    ///
    /// ```
    /// use datasets::FileFormat;
    /// assert_eq!(FileFormat::for_classification("a/b.tsv".as_ref()).unwrap(), FileFormat::Tsv { gzip: false });
    /// assert_eq!(FileFormat::for_classification("b.ndjson.gz".as_ref()).unwrap(), FileFormat::JsonLines { gzip: true });
    /// assert!(FileFormat::for_classification("b.conll".as_ref()).is_err());
    /// ```
    pub fn for_classification(path: &Path) -> Result<Self> {
        let (ext, gzip) = extension(path);
        match (ext.as_str(), gzip) {
            ("xlsx" | "xlsm", false) => Ok(Self::Xlsx),
            ("csv", _) => Ok(Self::Csv { gzip }),
            ("tsv", _) => Ok(Self::Tsv { gzip }),
            ("jsonl" | "ndjson", _) => Ok(Self::JsonLines { gzip }),
            _ => Err(DatasetError::UnsupportedFormat { path: path.to_path_buf(), accepted: CLASSIFICATION_FORMATS }),
        }
    }

    /// The format of an NER file, from `path`'s extension (case-insensitive): `.tsv` is CoNLL.
    ///
    /// ```
    /// use datasets::FileFormat;
    /// assert_eq!(FileFormat::for_ner("a/b.tsv".as_ref()).unwrap(), FileFormat::Conll { gzip: false });
    /// assert_eq!(FileFormat::for_ner("b.csv.gz".as_ref()).unwrap(), FileFormat::Csv { gzip: true });
    /// ```
    pub fn for_ner(path: &Path) -> Result<Self> {
        let (ext, gzip) = extension(path);
        match (ext.as_str(), gzip) {
            ("xlsx" | "xlsm", false) => Ok(Self::Xlsx),
            ("csv", _) => Ok(Self::Csv { gzip }),
            ("jsonl" | "ndjson", _) => Ok(Self::JsonLines { gzip }),
            ("conll" | "txt" | "tsv" | "bio" | "iob", _) => Ok(Self::Conll { gzip }),
            _ => Err(DatasetError::UnsupportedFormat { path: path.to_path_buf(), accepted: NER_FORMATS }),
        }
    }

    /// The format named by `path`'s extension as an NER file reads it (`.tsv` is CoNLL), as this function always
    /// did; prefer [`for_classification`](Self::for_classification) or [`for_ner`](Self::for_ner).
    ///
    /// ```
    /// use datasets::FileFormat;
    /// assert_eq!(FileFormat::from_path("a/b.csv.gz".as_ref()).unwrap(), FileFormat::Csv { gzip: true });
    /// ```
    pub fn from_path(path: &Path) -> Result<Self> {
        Self::for_ner(path)
    }
}

/// The character encoding of a text (CSV, TSV, JSON lines or CoNLL) file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TextEncoding {
    /// UTF-8; bytes that are not valid UTF-8 (the Kaggle NER CSV is Windows-1252) are read as Windows-1252, one
    /// by one, with a warning that counts the lines they are on.
    #[default]
    Auto,
    /// UTF-8; invalid bytes are an error.
    Utf8,
    /// Windows-1252 (a superset of the printable Latin-1 range).
    Windows1252,
}

/// Opens a data file for reading; anything but a regular file (a directory, a pipe, a device such as `/dev/zero`
/// that never ends) is an error naming the path.
pub(crate) fn open_data_file(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let regular = file.metadata().map_err(|e| DatasetError::io(path, e))?.is_file();
    if !regular {
        let why = "not a regular file (a directory, pipe or device): data must be read from a file";
        return Err(DatasetError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, why)));
    }
    Ok(file)
}

/// Reads a whole file, gunzipping it when asked.
pub(crate) fn read_bytes(path: &Path, gzip: bool) -> Result<Vec<u8>> {
    let file = open_data_file(path)?;
    let mut bytes = Vec::new();
    if gzip {
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
            .read_to_end(&mut bytes)
            .map_err(|e| DatasetError::io(path, e))?;
    } else {
        let mut file = file;
        if let Ok(meta) = file.metadata() {
            bytes.reserve(usize::try_from(meta.len()).unwrap_or(0));
        }
        file.read_to_end(&mut bytes).map_err(|e| DatasetError::io(path, e))?;
    }
    Ok(bytes)
}

/// Decodes file bytes as text; a UTF-8 byte-order mark is dropped.
pub(crate) fn decode(path: &Path, bytes: Vec<u8>, encoding: TextEncoding) -> Result<String> {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    let windows_1252 = |bytes: &[u8]| {
        let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
        text.into_owned()
    };
    match encoding {
        TextEncoding::Utf8 => String::from_utf8(bytes)
            .map_err(|_| DatasetError::Encoding { location: Location::file(path), encoding: "UTF-8" }),
        TextEncoding::Windows1252 => Ok(windows_1252(&bytes)),
        TextEncoding::Auto => match String::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => {
                let (text, lines, first) = utf8_with_windows_1252_fallback(e.as_bytes());
                tracing::warn!(
                    path = %path.display(),
                    "{lines} line(s) are not valid UTF-8 (first: line {first}): their invalid bytes were read as \
                     Windows-1252, everything else as UTF-8"
                );
                Ok(text)
            }
        },
    }
}

/// Decodes `bytes` as UTF-8, reading only the bytes that are not valid UTF-8 as Windows-1252, so one stray byte
/// never garbles the valid multi-byte characters around it. Returns the text, the number of lines with invalid
/// bytes and the first such line (1-based).
fn utf8_with_windows_1252_fallback(bytes: &[u8]) -> (String, usize, usize) {
    let mut text = String::with_capacity(bytes.len());
    let (mut lines, mut first) = (0usize, 0usize);
    for (index, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let mut invalid = false;
        for chunk in line.utf8_chunks() {
            text.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                invalid = true;
                text.push_str(&encoding_rs::WINDOWS_1252.decode_without_bom_handling(chunk.invalid()).0);
            }
        }
        if invalid {
            lines += 1;
            if first == 0 {
                first = index + 1;
            }
        }
    }
    (text, lines, first)
}

/// Reads and decodes a text file.
pub(crate) fn read_text(path: &Path, gzip: bool, encoding: TextEncoding) -> Result<String> {
    let bytes = read_bytes(path, gzip)?;
    decode(path, bytes, encoding)
}
