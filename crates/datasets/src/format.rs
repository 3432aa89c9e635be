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
    /// UTF-8 when the bytes are valid UTF-8, otherwise Windows-1252 (the Kaggle NER CSV).
    #[default]
    Auto,
    /// UTF-8; invalid bytes are an error.
    Utf8,
    /// Windows-1252 (a superset of the printable Latin-1 range).
    Windows1252,
}

/// Reads a whole file, gunzipping it when asked.
pub(crate) fn read_bytes(path: &Path, gzip: bool) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| DatasetError::io(path, e))?;
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
                tracing::info!(path = %path.display(), "not valid UTF-8; reading it as Windows-1252");
                Ok(windows_1252(e.as_bytes()))
            }
        },
    }
}

/// Reads and decodes a text file.
pub(crate) fn read_text(path: &Path, gzip: bool, encoding: TextEncoding) -> Result<String> {
    let bytes = read_bytes(path, gzip)?;
    decode(path, bytes, encoding)
}
