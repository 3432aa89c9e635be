//! Crash-safe writes: a reader (or the next run, after a kill or a power cut) sees the previous version of a file or
//! directory or the new one, whole, never a mixture or a truncated file.
//!
//! - [`write()`], [`write_with`] and [`write_via_path`] write a file: a unique temporary file in the same directory,
//!   fsync, rename over the target, fsync of the directory.
//! - [`StagedDir`] writes a directory: the files go into a temporary directory beside the target, which then takes
//!   the target's place in one atomic exchange (`renameat2(RENAME_EXCHANGE)` on Linux), so replacing an existing
//!   directory never leaves it half old, half new.
//!
//! Modes are those a plain write gives: a new file gets `0o666` less the process umask (as [`File::create`]), a new
//! directory `0o777` less the umask (as [`std::fs::create_dir`]); a file or directory replaced keeps its mode. A
//! target that is a symbolic link is followed: the file or directory it points to is replaced, in its own
//! directory, and the link stays. Every error names the target (the file a user asked for, not a temporary file).
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

/// Symbolic links followed at most on the way to a target (the kernel's limit).
const MAX_LINKS: usize = 40;

/// A failed step of an atomic write, naming the file or directory being written (the target, not the temporary
/// file): `cannot write out/vectors.npy: No space left on device (os error 28)`.
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

    /// The file or directory the failed step was writing (a symbolic link's target once the link is resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.error.kind()
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &std::io::Error {
        &self.error
    }
}

/// The result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Writes `bytes` to `path` atomically (see the crate documentation).
///
/// A new file gets the mode a plain [`File::create`] gives (`0o666` less the process umask); a file replaced keeps
/// its mode. When `path` is a symbolic link, the file it points to is replaced (in that file's directory) and the
/// link stays. Errors name `path` (the link's target for a link).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically with `fill`, which writes the contents into the temporary file it is given.
///
/// Modes and symbolic links as for [`write()`]; an error of `fill` is returned naming `path`.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let target = Target::resolve(path)?;
    let mut temporary = target.temporary_file()?;
    fill(temporary.as_file_mut()).map_err(|error| Error::new("write", &target.path, error))?;
    target.finish(temporary)
}

/// [`write_with`] for writers that can only write to a path (`fill` writes the file at the path it is given): `E`
/// carries both their errors and this crate's.
///
/// Modes and symbolic links as for [`write()`]. Errors of `fill` are returned as they are: they name the temporary
/// file, if anything, so callers should add the target's name (`anyhow::Context`, for one).
pub fn write_via_path<E: From<Error>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let target = Target::resolve(path)?;
    let temporary = target.temporary_file()?;
    fill(temporary.path())?;
    Ok(target.finish(temporary)?)
}

/// Where a file write goes: the file `path` names, once symbolic links are followed.
struct Target {
    /// The file replaced (a link's target).
    path: PathBuf,
    dir: PathBuf,
    name: String,
    /// The mode the new file gets: the replaced file's, or (`None`) the one the temporary file was created with.
    mode: Option<u32>,
}

impl Target {
    fn resolve(path: &Path) -> Result<Self> {
        let path = resolve_links(path)?;
        let (dir, name) = split(&path)?;
        let mode = match std::fs::metadata(&path) {
            Ok(metadata) => existing_mode(&metadata),
            Err(_) => None,
        };
        Ok(Self { path, dir, name, mode })
    }

    /// A temporary file beside the target: created with the mode a new file gets under the umask (`0o666` less
    /// the umask, as `File::create` does), or private (`0o600`) when it replaces a file whose mode it takes later.
    fn temporary_file(&self) -> Result<tempfile::NamedTempFile> {
        sweep(&self.dir, ".", STALE_AFTER);
        let prefix = format!(".{}{PARTIAL_MARK}", self.name);
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if self.mode.is_some() { 0o600 } else { 0o666 };
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        builder.tempfile_in(&self.dir).map_err(|error| Error::new("create a temporary file for", &self.path, error))
    }

    /// Gives the temporary file the target's mode, syncs it and renames it over the target.
    fn finish(self, temporary: tempfile::NamedTempFile) -> Result<()> {
        // Opened again: a `write_via_path` writer may have replaced the file at the temporary path.
        let file = open_to_sync(temporary.path()).map_err(|error| Error::new("write", &self.path, error))?;
        if let Some(mode) = self.mode {
            set_mode(&file, mode).map_err(|error| Error::new("set the mode of", &self.path, error))?;
        }
        file.sync_all().map_err(|error| Error::new("write", &self.path, error))?;
        drop(file);
        temporary.persist(&self.path).map_err(|error| Error::new("rename into", &self.path, error.error))?;
        sync_dir(&self.dir);
        Ok(())
    }
}

/// The permission bits of an existing file (`None` where the platform has none).
#[allow(clippy::unnecessary_wraps)] // `None` off Unix
fn existing_mode(metadata: &std::fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(metadata.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// Sets the mode of an open file or directory (the mode of the file itself, whatever it allows).
fn set_mode(file: &File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

/// Opens a file or directory to sync it (and set its mode): for reading, or, where its mode allows only writing, for
/// writing.
fn open_to_sync(path: &Path) -> std::io::Result<File> {
    File::open(path).or_else(|error| std::fs::OpenOptions::new().write(true).open(path).map_err(|_| error))
}

/// Follows `path` through symbolic links (a relative link from the link's directory) to what they point to: the
/// path itself when it is no link, or names nothing yet; the last link's target when that names nothing (it is
/// created there, as `File::create` through the link would).
fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = std::fs::read_link(&current)
                    .map_err(|error| Error::new("read the symbolic link", &current, error))?;
                current = if link.is_absolute() {
                    link
                } else {
                    match current.parent() {
                        Some(parent) => parent.join(link),
                        None => link,
                    }
                };
            }
            _ => return Ok(current),
        }
    }
    let error = std::io::Error::other(format!("more than {MAX_LINKS} symbolic links on the way to the file"));
    Err(Error::new("write", path, error))
}

/// Removes the partial files and directories that writers of `target` left, if untouched for `older_than`; returns
/// how many it removed. A writer that holds an exclusive lock on `target` may pass [`Duration::ZERO`].
/// A symbolic link is followed: the partial files sit beside the file it points to.
pub fn remove_partials(target: &Path, older_than: Duration) -> usize {
    let Ok((dir, name)) = resolve_links(target).and_then(|target| split(&target)) else { return 0 };
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
    ///
    /// A new directory gets the mode a plain [`std::fs::create_dir`] gives (`0o777` less the process umask); a
    /// directory replaced keeps its mode. Files written with [`StagedDir::write`] get `0o666` less the umask, as
    /// with [`File::create`]. When `target` is a symbolic link, the directory it points to is replaced (beside
    /// itself) and the link stays.
    pub fn new(target: &Path) -> Result<Self> {
        let target = &resolve_links(target)?;
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
        // Errors name the file as it will be once committed: the staging directory's name means nothing to a user.
        let shown = self.target.join(name);
        let mut file = File::create(&path).map_err(|error| Error::new("create", &shown, error))?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|error| Error::new("write", &shown, error))
    }

    /// Syncs the file `name`, which another writer put into the staging directory.
    pub fn sync_file(&self, name: &str) -> Result<()> {
        sync(&self.staging.path().join(name)).map_err(|error| Error::new("write", &self.target.join(name), error))
    }

    /// Puts the staged directory in the target's place: a rename when there is no target, else one atomic
    /// exchange, after which the old directory is removed. Where the file system cannot exchange, the old
    /// directory is first renamed aside (a kill between the two renames leaves it under a `.partial-` name).
    pub fn commit(self) -> Result<()> {
        let staging =
            open_to_sync(self.staging.path()).map_err(|error| Error::new("write directory", &self.target, error))?;
        if let Some(mode) = std::fs::metadata(&self.target).ok().filter(|m| m.is_dir()).and_then(|m| existing_mode(&m))
        {
            set_mode(&staging, mode).map_err(|error| Error::new("set the mode of", &self.target, error))?;
        }
        staging.sync_all().map_err(|error| Error::new("write directory", &self.target, error))?;
        drop(staging);
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

fn sync(path: &Path) -> std::io::Result<()> {
    File::open(path).and_then(|file| file.sync_all())
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

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_keeps_its_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, wanted) in [("report.md", 0o664), ("secret.json", 0o600), ("script.sh", 0o750)] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"old").expect("write");
            chmod(&path, wanted);
            write(&path, b"new").expect("rewrite");
            assert_eq!(mode(&path), wanted, "{name}");
            write_with(&path, |file| file.write_all(b"newer")).expect("rewrite");
            assert_eq!(mode(&path), wanted, "{name}");
            // A writer that recreates the file at the path it is given cannot change the mode either.
            write_via_path(&path, |temporary| {
                std::fs::remove_file(temporary).map_err(|error| Error::new("fill", temporary, error))?;
                std::fs::write(temporary, b"newest").map_err(|error| Error::new("fill", temporary, error))
            })
            .expect("rewrite");
            assert_eq!(mode(&path), wanted, "{name}");
            assert_eq!(std::fs::read(&path).expect("read"), b"newest");
        }
        assert_eq!(names(dir.path()), ["report.md", "script.sh", "secret.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_followed_and_its_target_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        let links = dir.path().join("links");
        std::fs::create_dir_all(&real).expect("mkdir");
        std::fs::create_dir_all(&links).expect("mkdir");
        let target = real.join("vectors.npy");
        std::fs::write(&target, b"old").expect("write");
        chmod(&target, 0o664);
        // A relative link (taken from the link's own directory), and a link to that link.
        let link = links.join("vectors.npy");
        std::os::unix::fs::symlink("../real/vectors.npy", &link).expect("symlink");
        let chained = dir.path().join("chained.npy");
        std::os::unix::fs::symlink(&link, &chained).expect("symlink");

        write(&link, b"new").expect("write through the link");
        assert!(std::fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink(), "the link stays");
        assert_eq!(std::fs::read(&target).expect("read"), b"new", "the target holds the new contents");
        assert_eq!(mode(&target), 0o664);
        write_with(&chained, |file| file.write_all(b"newer")).expect("write through two links");
        assert!(std::fs::symlink_metadata(&chained).expect("lstat").file_type().is_symlink());
        assert_eq!(std::fs::read(&target).expect("read"), b"newer");
        assert_eq!(names(&real), ["vectors.npy"], "no temporary file left beside the target");
        assert_eq!(names(&links), ["vectors.npy"], "nor beside the link");

        // A link to nothing yet: the file is created where it points, as `File::create` would.
        let dangling = links.join("new.jsonl");
        std::os::unix::fs::symlink("../real/new.jsonl", &dangling).expect("symlink");
        write(&dangling, b"{}").expect("write through a dangling link");
        assert_eq!(std::fs::read(real.join("new.jsonl")).expect("read"), b"{}");
        assert!(std::fs::symlink_metadata(&dangling).expect("lstat").file_type().is_symlink());

        // Partial files of a link's target are found beside the target.
        let partial = real.join(".vectors.npy.partial-abc");
        std::fs::write(&partial, b"x").expect("write");
        assert_eq!(remove_partials(&link, Duration::ZERO), 1);

        // A loop of links is an error naming the path, not a hang.
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).expect("symlink");
        std::os::unix::fs::symlink(&a, &b).expect("symlink");
        let error = write(&a, b"x").unwrap_err();
        assert_eq!(error.path(), a);
        assert!(error.to_string().contains("symbolic links"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_to_a_directory_is_followed_and_its_target_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("store/checkpoint");
        let first = StagedDir::new(&real).expect("stage");
        first.write("a", b"1").expect("write");
        first.commit().expect("commit");
        let link = dir.path().join("checkpoint");
        std::os::unix::fs::symlink("store/checkpoint", &link).expect("symlink");
        let second = StagedDir::new(&link).expect("stage");
        assert_eq!(second.target(), dir.path().join("store/checkpoint"));
        second.write("b", b"2").expect("write");
        second.commit().expect("commit");
        assert!(std::fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink(), "the link stays");
        assert_eq!(names(&real), ["b"]);
        assert_eq!(names(&dir.path().join("store")), ["checkpoint"]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_names_the_file_not_the_temporary_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vectors.npy");
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let error = write_with(&path, |_| {
            let mut full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
            full.write_all(&[0; 4096])?;
            full.flush()
        })
        .unwrap_err();
        let shown = error.to_string();
        assert_eq!(error.path(), path);
        assert_eq!(error.io_error().raw_os_error(), Some(28), "{shown}");
        assert_eq!(shown, format!("cannot write {}: No space left on device (os error 28)", path.display()));
        assert!(!path.exists());
        assert_eq!(names(dir.path()), Vec::<String>::new(), "nothing left behind");
        // Every step of a write names the target: here, the creation of the temporary file.
        let missing = dir.path().join("missing/vectors.npy");
        let error = write(&missing, b"x").unwrap_err();
        assert!(error.to_string().starts_with(&format!("cannot create a temporary file for {}: ", missing.display())));
        // A staged directory's files are named as they will be after the commit.
        let staged = StagedDir::new(&dir.path().join("checkpoint")).expect("stage");
        std::fs::remove_dir(staged.path()).expect("rmdir");
        let error = staged.write("model.safetensors", b"x").unwrap_err();
        assert_eq!(error.path(), dir.path().join("checkpoint/model.safetensors"));
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
