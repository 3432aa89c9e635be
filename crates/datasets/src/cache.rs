//! A cache of processed (tokenized) datasets: bincode files keyed by a content hash.
//!
//! File layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `BMTDSET\0` |
//! | 4 | format version ([`CACHE_FORMAT_VERSION`]) |
//! | 32 | key: SHA-256 of the input file's bytes, the loader options and the tokenizer |
//! | 8 | payload length |
//! | 32 | SHA-256 of the payload |
//! | n | payload: bincode 2 (standard config) of the cached value |
//!
//! Files are written with [`atomic_files::write_with`]: a temporary file in the cache directory
//! (`.<entry>.partial-*`), synced and renamed into place; partial files older than an hour (left by a killed
//! process: a write takes seconds) are removed when the next entry is written.
//! A missing, stale (other version or key) or corrupt (short, checksum or decoding failure)
//! file is reported and rebuilt, never trusted.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{DatasetError, Result};

/// Bumped whenever the cached types or their meaning change.
pub const CACHE_FORMAT_VERSION: u32 = 4;

const MAGIC: &[u8; 8] = b"BMTDSET\0";
const HEADER_LEN: usize = 8 + 4 + 32 + 8 + 32;
/// Upper bound bincode may allocate while decoding (the checksum has been verified by then).
const DECODE_LIMIT: usize = 1 << 36;

/// A 32-byte cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Builds a [`CacheKey`] from the things a cached result depends on.
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    /// A key for results of kind `kind` (e.g. `classification`).
    pub fn new(kind: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"datasets-cache\0");
        hasher.update(CACHE_FORMAT_VERSION.to_le_bytes());
        let mut key = Self(hasher);
        key.bytes(kind.as_bytes());
        key
    }

    /// Adds a length-prefixed byte string.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds the JSON form of a value (options, configurations).
    pub fn json<T: Serialize>(&mut self, value: &T) -> Result<&mut Self> {
        let json =
            serde_json::to_vec(value).map_err(|e| DatasetError::InvalidOption(format!("cannot hash options: {e}")))?;
        Ok(self.bytes(&json))
    }

    /// Adds the SHA-256 of a file's bytes (streamed).
    pub fn file(&mut self, path: &Path) -> Result<&mut Self> {
        let mut file = crate::format::open_data_file(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| DatasetError::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest = hasher.finalize();
        Ok(self.bytes(&digest))
    }

    /// Adds a tokenizer (its JSON serialization).
    pub fn tokenizer(&mut self, tokenizer: &tokenizers::Tokenizer) -> Result<&mut Self> {
        let json = tokenizer
            .to_string(false)
            .map_err(|e| DatasetError::Tokenizer(format!("cannot serialize tokenizer: {e}")))?;
        Ok(self.bytes(json.as_bytes()))
    }

    /// The finished key.
    pub fn finish(&self) -> CacheKey {
        CacheKey(self.0.clone().finalize().into())
    }
}

/// What happened with the cache on a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache directory configured: built, not cached.
    Disabled,
    /// Loaded from the cache.
    Hit,
    /// No cache file yet: built.
    Missing,
    /// The cache file was for another input, options, tokenizer or format version: rebuilt.
    Stale(String),
    /// The cache file was truncated or damaged: rebuilt.
    Corrupt(String),
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disabled => f.write_str("cache disabled"),
            Self::Hit => f.write_str("cache hit"),
            Self::Missing => f.write_str("no cache yet, built"),
            Self::Stale(why) => write!(f, "stale cache ({why}), rebuilt"),
            Self::Corrupt(why) => write!(f, "corrupt cache ({why}), rebuilt"),
        }
    }
}

/// The cache outcome of one load: status, file, and whether writing it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheReport {
    /// What happened.
    pub status: CacheStatus,
    /// The cache file, when caching is enabled.
    pub path: Option<PathBuf>,
    /// Why the rebuilt result could not be written (the result is still returned).
    pub write_error: Option<String>,
}

impl fmt::Display for CacheReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(path) = &self.path {
            write!(f, ": {}", path.display())?;
        }
        if let Some(e) = &self.write_error {
            write!(f, " (not written: {e})")?;
        }
        Ok(())
    }
}

/// A directory of cache files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
}

/// Result of reading a cache file.
enum Lookup<T> {
    Hit(T),
    Missing,
    Stale(String),
    Corrupt(String),
}

impl Cache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a cache entry named `name` lives in.
    pub fn path_for(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
            .collect();
        self.dir.join(format!("{safe}.bin"))
    }

    /// Returns the cached value for `key` in entry `name`, or builds it with `build`, writes it
    /// and returns it. Problems reading the cache are reported in the [`CacheReport`] (and
    /// logged), never returned as errors; errors from `build` are returned.
    pub fn load_or_build<T, F>(&self, name: &str, key: CacheKey, build: F) -> Result<(T, CacheReport)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T>,
    {
        let path = self.path_for(name);
        let status = match read_entry::<T>(&path, key) {
            Lookup::Hit(value) => {
                tracing::info!(path = %path.display(), "cache hit");
                let report = CacheReport { status: CacheStatus::Hit, path: Some(path), write_error: None };
                return Ok((value, report));
            }
            Lookup::Missing => CacheStatus::Missing,
            Lookup::Stale(why) => {
                tracing::warn!(path = %path.display(), "stale cache ({why}); rebuilding");
                CacheStatus::Stale(why)
            }
            Lookup::Corrupt(why) => {
                tracing::warn!(path = %path.display(), "corrupt cache ({why}); rebuilding");
                CacheStatus::Corrupt(why)
            }
        };
        let value = build()?;
        let write_error = match self.write_entry(&path, key, &value) {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot write cache: {e}");
                Some(e.to_string())
            }
        };
        Ok((value, CacheReport { status, path: Some(path), write_error }))
    }

    fn write_entry<T: Serialize>(&self, path: &Path, key: CacheKey, value: &T) -> Result<()> {
        let cache_error = |message: String| DatasetError::Cache { path: path.to_path_buf(), message };
        let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| cache_error(format!("encoding: {e}")))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| cache_error(e.to_string()))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&CACHE_FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&key.0);
        header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        header.extend_from_slice(&Sha256::digest(&payload));
        atomic_files::write_with(path, |file| {
            file.write_all(&header)?;
            file.write_all(&payload)
        })
        .map_err(|e| cache_error(e.to_string()))?;
        tracing::info!(path = %path.display(), bytes = HEADER_LEN + payload.len(), "cache written");
        Ok(())
    }
}

fn read_entry<T: DeserializeOwned>(path: &Path, key: CacheKey) -> Lookup<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return Lookup::Missing
        }
        Err(e) => return Lookup::Corrupt(format!("unreadable: {e}")),
    };
    let Some((header, payload)) = bytes.split_at_checked(HEADER_LEN) else {
        return Lookup::Corrupt(format!("{} bytes, shorter than the header", bytes.len()));
    };
    let field = |range: std::ops::Range<usize>| header.get(range).unwrap_or_default();
    if field(0..8) != MAGIC {
        return Lookup::Corrupt("not a cache file (bad magic)".into());
    }
    let version = u32::from_le_bytes(field(8..12).try_into().unwrap_or_default());
    if version != CACHE_FORMAT_VERSION {
        return Lookup::Stale(format!("format version {version}, expected {CACHE_FORMAT_VERSION}"));
    }
    if field(12..44) != key.0 {
        return Lookup::Stale("input file, options or tokenizer changed".into());
    }
    let len = u64::from_le_bytes(field(44..52).try_into().unwrap_or_default());
    if len != payload.len() as u64 {
        return Lookup::Corrupt(format!("payload is {} bytes, header says {len} (truncated?)", payload.len()));
    }
    if Sha256::digest(payload).as_slice() != field(52..84) {
        return Lookup::Corrupt("payload checksum mismatch".into());
    }
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
    match bincode::serde::decode_from_slice::<T, _>(payload, config) {
        Ok((value, used)) if used == payload.len() => Lookup::Hit(value),
        Ok((_, used)) => Lookup::Corrupt(format!("{} trailing bytes", payload.len() - used)),
        Err(e) => Lookup::Corrupt(format!("undecodable payload: {e}")),
    }
}
