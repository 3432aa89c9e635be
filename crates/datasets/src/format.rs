//! Input file formats and text encodings.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Location, Result};

/// The layout of an input file, normally chosen from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileFormat {
    /// An Excel workbook (`.xlsx`, `.xlsm`).
    Xlsx,
    /// Comma-separated values (`.csv`, or gzip-compressed `.csv.gz`).
    Csv {
        /// Whether the file is gzip-compressed.
        gzip: bool,
    },
    /// CoNLL-style token-per-line text (`.conll`, `.txt`, `.tsv`, `.bio`, `.iob`, optionally `.gz`):
    /// `token<TAB>tag` lines, sentences separated by blank lines.
    Conll {
        /// Whether the file is gzip-compressed.
        gzip: bool,
    },
}

impl FileFormat {
    /// The format named by `path`'s extension (case-insensitive).
    ///
    /// ```
    /// use datasets::FileFormat;
    /// assert_eq!(FileFormat::from_path("a/b.csv.gz".as_ref()).unwrap(), FileFormat::Csv { gzip: true });
    /// ```
    pub fn from_path(path: &Path) -> Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let (stem, gzip) = match name.strip_suffix(".gz") {
            Some(stem) => (stem, true),
            None => (name.as_str(), false),
        };
        let ext = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match (ext, gzip) {
            ("xlsx" | "xlsm", false) => Ok(Self::Xlsx),
            ("csv", _) => Ok(Self::Csv { gzip }),
            ("conll" | "txt" | "tsv" | "bio" | "iob", _) => Ok(Self::Conll { gzip }),
            _ => Err(DatasetError::UnsupportedFormat(path.to_path_buf())),
        }
    }
}

/// The character encoding of a text (CSV or CoNLL) file.
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
