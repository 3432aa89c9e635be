//! Crash-safe writes: a reader (or the next run, after a kill or a power cut) sees the previous version of a file or
//! directory or the new one, whole, never a mixture or a truncated file.
//!
//! - [`write`], [`write_with`] and [`write_via_path`] write a file: a unique temporary file in the same directory,
//!   fsync, rename over the target, fsync of the directory.
//! - [`StagedDir`] writes a directory: the files go into a temporary directory beside the target, which then takes
//!   the target's place in one atomic exchange (`renameat2(RENAME_EXCHANGE)` on Linux), so replacing an existing
//!   directory never leaves it half old, half new.
//!
//! Temporary files and directories are named `.<target>.partial-<random>`. A writer killed mid-write leaves one
//! behind; every later write into the same directory removes those older than [`STALE_AFTER`], and
//! [`remove_partials`] removes a target's at once (for a writer that holds a lock on the target).
//!
//! ```
//! # fn main() -> Result<(), atomic_files::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let report = dir.path().join("report.json");
//! atomic_files::write(&report, b"{}\n")?;
//! let model = atomic_files::StagedDir::new(&dir.path().join("model"))?;
//! model.write("config.json", b"{}\n")?;
//! model.commit()?;
//! assert!(dir.path().join("model/config.json").is_file());
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Partial files older than this are taken to be left by a killed writer and removed at the next write.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The mark in the name of every temporary file or directory this crate creates.
const PARTIAL_MARK: &str = ".partial-";

/// A failed step of an atomic write, naming the path it was working on.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {error}", path.display())]
pub struct Error {
    action: &'static str,
    path: PathBuf,
    error: std::io::Error,
}

impl Error {
    fn new(action: &'static str, path: &Path, error: std::io::Error) -> Self {
        Self { action, path: path.to_path_buf(), error }
    }

    /// The file or directory the failed step was working on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.error.kind()
    }
}

/// The result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Writes `bytes` to `path` atomically (see the crate documentation).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically with `fill`, which writes the contents into the temporary file it is given.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let (dir, name) = split(path)?;
    let mut temporary = temporary_file(&dir, &name)?;
    fill(temporary.as_file_mut()).map_err(|error| Error::new("write", temporary.path(), error))?;
    finish(temporary, path, &dir)
}

/// [`write_with`] for writers that can only write to a path (`fill` writes the file at the path it is given): `E`
/// carries both their errors and this crate's.
pub fn write_via_path<E: From<Error>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let (dir, name) = split(path)?;
    let temporary = temporary_file(&dir, &name)?;
    fill(temporary.path())?;
    Ok(finish(temporary, path, &dir)?)
}

/// Removes the partial files and directories that writers of `target` left, if untouched for `older_than`; returns
/// how many it removed. A writer that holds an exclusive lock on `target` may pass [`Duration::ZERO`].
pub fn remove_partials(target: &Path, older_than: Duration) -> usize {
    let Ok((dir, name)) = split(target) else { return 0 };
    sweep(&dir, &format!(".{name}{PARTIAL_MARK}"), older_than)
}

/// A directory being written: files go into a temporary directory beside the target; [`StagedDir::commit`] puts it
/// in the target's place. Dropped without a commit, it is removed and the target is untouched.
#[derive(Debug)]
pub struct StagedDir {
    staging: tempfile::TempDir,
    target: PathBuf,
    parent: PathBuf,
}

impl StagedDir {
    /// Starts writing `target` (created with its parents on commit; an existing directory is replaced whole).
    pub fn new(target: &Path) -> Result<Self> {
        let (parent, name) = split(target)?;
        std::fs::create_dir_all(&parent).map_err(|error| Error::new("create directory", &parent, error))?;
        if target.exists() && !target.is_dir() {
            let error = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it exists and is not a directory");
            return Err(Error::new("write directory", target, error));
        }
        sweep(&parent, ".", STALE_AFTER);
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}{PARTIAL_MARK}"))
            .tempdir_in(&parent)
            .map_err(|error| Error::new("create a temporary directory in", &parent, error))?;
        Ok(Self { staging, target: target.to_path_buf(), parent })
    }

    /// The directory the files are written into until the commit.
    pub fn path(&self) -> &Path {
        self.staging.path()
    }

    /// The directory this will become.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes and syncs the file `name` in the staging directory.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.staging.path().join(name);
        let mut file = File::create(&path).map_err(|error| Error::new("create", &path, error))?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|error| Error::new("write", &path, error))
    }

    /// Syncs the file `name`, which another writer put into the staging directory.
    pub fn sync_file(&self, name: &str) -> Result<()> {
        sync(&self.staging.path().join(name))
    }

    /// Puts the staged directory in the target's place: a rename when there is no target, else one atomic
    /// exchange, after which the old directory is removed. Where the file system cannot exchange, the old
    /// directory is first renamed aside (a kill between the two renames leaves it under a `.partial-` name).
    pub fn commit(self) -> Result<()> {
        sync(self.staging.path())?;
        let staged = self.staging.keep();
        let placed = if self.target.is_dir() { exchange(&staged, &self.target) } else { rename(&staged, &self.target) };
        if let Err(error) = placed {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(error);
        }
        if staged.exists() {
            std::fs::remove_dir_all(&staged)
                .map_err(|error| Error::new("remove the replaced directory", &staged, error))?;
        }
        sync_dir(&self.parent);
        Ok(())
    }
}

/// Swaps `staged` and `target`; afterwards `staged` holds the old directory (or nothing, after the fallback).
fn exchange(staged: &Path, target: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, staged, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            Err(errno) if errno == rustix::io::Errno::INVAL || errno == rustix::io::Errno::NOSYS => {
                tracing::debug!(path = %target.display(), "the file system cannot exchange directories; renaming");
            }
            Err(errno) => return Err(Error::new("replace", target, errno.into())),
        }
    }
    let mut aside = staged.as_os_str().to_owned();
    aside.push("-replaced");
    let aside = PathBuf::from(aside);
    rename(target, &aside)?;
    rename(staged, target)?;
    std::fs::remove_dir_all(&aside).map_err(|error| Error::new("remove the replaced directory", &aside, error))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|error| Error::new("rename into", to, error))
}

/// The directory and file name of `path`.
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path.file_name().ok_or_else(|| {
        let error = std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no file name");
        Error::new("write", path, error)
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_string_lossy().into_owned()))
}

fn temporary_file(dir: &Path, name: &str) -> Result<tempfile::NamedTempFile> {
    sweep(dir, ".", STALE_AFTER);
    tempfile::Builder::new()
        .prefix(&format!(".{name}{PARTIAL_MARK}"))
        .tempfile_in(dir)
        .map_err(|error| Error::new("create a temporary file in", dir, error))
}

fn finish(temporary: tempfile::NamedTempFile, path: &Path, dir: &Path) -> Result<()> {
    sync(temporary.path())?;
    temporary.persist(path).map_err(|error| Error::new("rename into", path, error.error))?;
    sync_dir(dir);
    Ok(())
}

fn sync(path: &Path) -> Result<()> {
    File::open(path).and_then(|file| file.sync_all()).map_err(|error| Error::new("sync", path, error))
}

/// Makes renames in `dir` durable; not every file system can sync a directory, so a failure is only logged.
fn sync_dir(dir: &Path) {
    if let Err(error) = File::open(dir).and_then(|file| file.sync_all()) {
        tracing::debug!(path = %dir.display(), "cannot sync the directory: {error}");
    }
}

/// Removes the entries of `dir` whose names start with `prefix` and carry the partial mark, untouched for
/// `older_than`.
fn sweep(dir: &Path, prefix: &str, older_than: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with(prefix) || !name.starts_with('.') || !name.contains(PARTIAL_MARK) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else { continue };
        let age = metadata.modified().ok().and_then(|modified| modified.elapsed().ok());
        if age.is_none_or(|age| age < older_than) {
            continue;
        }
        let path = entry.path();
        let gone = if metadata.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match gone {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a partial write left by a killed writer");
                removed += 1;
            }
            Err(error) => tracing::warn!(path = %path.display(), "cannot remove a partial write: {error}"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn backdate(path: &Path) {
        let old = std::time::SystemTime::now() - STALE_AFTER - Duration::from_secs(60);
        File::open(path).and_then(|file| file.set_modified(old)).expect("set mtime");
    }

    #[test]
    fn write_replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("report.md");
        write(&path, b"first").expect("write");
        write(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        assert_eq!(names(dir.path()), ["report.md"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_previous_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.npy");
        write(&path, b"good").expect("write");
        let failed = write_with(&path, |file| {
            file.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        let error = failed.unwrap_err();
        assert!(error.to_string().contains("disk full"), "{error}");
        assert_eq!(std::fs::read(&path).expect("read"), b"good");
        assert_eq!(names(dir.path()), ["out.npy"]);
        let failed: std::result::Result<(), Error> = write_via_path(&path, |temporary| {
            std::fs::write(temporary, b"half").expect("write");
            Err(Error::new("fill", temporary, std::io::Error::other("encoder failed")))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"good");
        assert_eq!(names(dir.path()), ["out.npy"]);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing/report.md");
        let error = write(&missing, b"x").unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        let error = StagedDir::new(&file).unwrap_err();
        assert_eq!(error.path(), file);
        assert!(error.to_string().contains("not a directory"), "{error}");
    }

    #[test]
    fn a_staged_directory_replaces_the_old_one_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("nested/checkpoint");
        let first = StagedDir::new(&target).expect("stage");
        first.write("a", b"1").expect("write");
        first.write("b", b"1").expect("write");
        first.commit().expect("commit");
        assert_eq!(names(&target), ["a", "b"]);
        let second = StagedDir::new(&target).expect("stage");
        second.write("a", b"2").expect("write");
        std::fs::write(second.path().join("c"), b"2").expect("write");
        second.sync_file("c").expect("sync");
        assert_eq!(names(&target), ["a", "b"], "nothing changes before the commit");
        second.commit().expect("commit");
        assert_eq!(names(&target), ["a", "c"]);
        assert_eq!(std::fs::read(target.join("a")).expect("read"), b"2");
        assert_eq!(names(&dir.path().join("nested")), ["checkpoint"]);
    }

    #[test]
    fn a_dropped_stage_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("checkpoint");
        let first = StagedDir::new(&target).expect("stage");
        first.write("a", b"1").expect("write");
        first.commit().expect("commit");
        let abandoned = StagedDir::new(&target).expect("stage");
        abandoned.write("a", b"2").expect("write");
        drop(abandoned);
        assert_eq!(names(dir.path()), ["checkpoint"]);
        assert_eq!(std::fs::read(target.join("a")).expect("read"), b"1");
    }

    #[test]
    fn stale_partials_go_at_the_next_write_and_fresh_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale_file = dir.path().join(".out.npy.partial-abc");
        let stale_dir = dir.path().join(".checkpoint.partial-def");
        let fresh = dir.path().join(".other.partial-ghi");
        let foreign = dir.path().join(".hidden");
        std::fs::write(&stale_file, b"x").expect("write");
        std::fs::create_dir(&stale_dir).expect("mkdir");
        std::fs::write(stale_dir.join("model.safetensors"), b"x").expect("write");
        std::fs::write(&fresh, b"x").expect("write");
        std::fs::write(&foreign, b"x").expect("write");
        backdate(&stale_file);
        backdate(&stale_dir);
        backdate(&foreign);
        write(&dir.path().join("report.md"), b"r").expect("write");
        assert_eq!(names(dir.path()), [".hidden", ".other.partial-ghi", "report.md"]);
        assert_eq!(remove_partials(&dir.path().join("other"), Duration::ZERO), 1);
        assert_eq!(names(dir.path()), [".hidden", "report.md"]);
    }
}
