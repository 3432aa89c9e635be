//! The modes of what `atomic-files` writes, under several umasks. One test only: the umask is the process's, so no
//! other test in this binary may run while it changes.
#![cfg(unix)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

/// Sets the process umask, returning the previous one.
fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

#[test]
fn new_files_and_directories_get_the_mode_a_plain_create_gives_under_the_umask() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = set_umask(0o022);
    for umask in [0o022, 0o027, 0o002, 0o077, 0o000] {
        set_umask(umask);
        let here = dir.path().join(format!("umask-{umask:03o}"));
        std::fs::create_dir(&here).expect("mkdir");
        let plain = here.join("plain");
        std::fs::File::create(&plain).expect("create");
        assert_eq!(mode(&plain), 0o666 & !umask, "the reference: File::create under umask {umask:03o}");

        let written = here.join("report.md");
        atomic_files::write(&written, b"report").expect("write");
        assert_eq!(mode(&written), 0o666 & !umask, "write under umask {umask:03o}");
        let filled = here.join("metrics.json");
        atomic_files::write_with(&filled, |file| file.write_all(b"{}")).expect("write_with");
        assert_eq!(mode(&filled), 0o666 & !umask, "write_with under umask {umask:03o}");
        let via_path = here.join("vectors.npy");
        atomic_files::write_via_path(&via_path, |path| -> Result<(), atomic_files::Error> {
            std::fs::write(path, b"npy").expect("fill");
            Ok(())
        })
        .expect("write_via_path");
        assert_eq!(mode(&via_path), 0o666 & !umask, "write_via_path under umask {umask:03o}");

        // A new staged directory: what `create_dir` gives, and its files what `File::create` gives.
        let staged = atomic_files::StagedDir::new(&here.join("checkpoint")).expect("stage");
        staged.write("config.json", b"{}").expect("write");
        staged.commit().expect("commit");
        assert_eq!(mode(&here.join("checkpoint")), 0o777 & !umask, "new directory under umask {umask:03o}");
        assert_eq!(mode(&here.join("checkpoint/config.json")), 0o666 & !umask);
    }

    // Under any umask, what is replaced keeps its mode.
    set_umask(0o077);
    let report = dir.path().join("report.md");
    std::fs::write(&report, b"old").expect("write");
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o664)).expect("chmod");
    atomic_files::write(&report, b"new").expect("rewrite");
    assert_eq!(mode(&report), 0o664, "a replaced 0664 file stays 0664");
    let checkpoint = dir.path().join("umask-022/checkpoint");
    std::fs::set_permissions(&checkpoint, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let staged = atomic_files::StagedDir::new(&checkpoint).expect("stage");
    staged.write("config.json", b"{}").expect("write");
    staged.commit().expect("commit");
    assert_eq!(mode(&checkpoint), 0o750, "a replaced directory keeps its mode");
    set_umask(before);
}
