//! Files tenx writes: `-o` of export and triage, the explorer's export,
//! profiles, the simulated tenant's manifest. One writer for all of them.
//!
//! - **Where**: a regular file (replaced) or a path where nothing is yet.
//!   Anything else — a symbolic link, a FIFO, a device, a directory, a
//!   socket — is refused with what it is, before anything is written; `-o -`
//!   means standard output. A missing folder is named as such.
//! - **Whole or not at all**: a temporary file beside the target, created
//!   0600, synced, then renamed over it. The temporary file is removed when
//!   the write fails, when the writer panics, and — for commands that call
//!   [`remove_on_signals`] — when SIGINT, SIGTERM, SIGHUP or SIGQUIT ends
//!   the process mid-write.
//!
//! The check and the rename are not one atomic step: someone who can write
//! to the target's folder could swap a file for a link between them. The
//! rename then replaces the link itself; it never writes through it.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path is not one tenx writes to: a folder, a device, a FIFO, a
    /// symlink, or no file name at all. Nothing was written.
    #[error("{0}")]
    Refused(String),
    /// The folder it goes in does not exist or is not a folder.
    #[error("{0}")]
    NoFolder(String),
    /// The file system said no (permission, a full disk); nothing is left
    /// behind.
    #[error("cannot write {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
}

impl OutputError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
        move |cause| OutputError::Io {
            path: path.display().to_string(),
            cause,
        }
    }
}

/// Where a command's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

impl Output {
    /// `-` is standard output; anything else a file path.
    pub fn parse(s: &OsStr) -> Output {
        if s == "-" {
            Output::Stdout
        } else {
            Output::File(PathBuf::from(s))
        }
    }

    /// A clap value parser for `-o`.
    pub fn clap(s: &str) -> Result<Output, String> {
        if s.is_empty() {
            return Err("an empty path (use - for standard output)".into());
        }
        Ok(Output::parse(OsStr::new(s)))
    }

    pub fn file(&self) -> Option<&Path> {
        match self {
            Output::Stdout => None,
            Output::File(p) => Some(p),
        }
    }
}

/// What is at a path, in words, when it is not something tenx writes to.
fn refused_kind(m: &std::fs::Metadata) -> Option<&'static str> {
    let t = m.file_type();
    if t.is_symlink() {
        return Some("a symbolic link");
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    if !t.is_file() {
        return Some("not a regular file");
    }
    None
}

/// The folder a path is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether tenx may write `path`: a regular file or nothing yet, in a
/// folder that exists. Nothing is written.
pub fn check_target(path: &Path) -> Result<(), OutputError> {
    if path.file_name().is_none() {
        return Err(OutputError::Refused(format!(
            "cannot write {}: the path names no file",
            path.display()
        )));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            if let Some(kind) = refused_kind(&m) {
                return Err(OutputError::Refused(format!(
                    "refusing to write {}: it is {kind}; tenx writes only to a regular file or a new path (-o - for standard output)",
                    path.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = folder_of(path);
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(OutputError::NoFolder(format!(
                    "cannot write {}: {} is not a folder",
                    path.display(),
                    dir.display()
                ))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(OutputError::NoFolder(format!(
                        "cannot write {}: the folder {} does not exist",
                        path.display(),
                        dir.display()
                    )))
                }
                Err(e) => Err(OutputError::io(path)(e)),
            }
        }
        Err(e) => Err(OutputError::io(path)(e)),
    }
}

/// Temporary files being written, removed if a signal ends the process.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// A temporary file that is removed when dropped, unless it was renamed.
struct TempFile {
    path: PathBuf,
    done: bool,
}

impl TempFile {
    fn register(path: PathBuf) -> TempFile {
        pending().push(path.clone());
        TempFile { path, done: false }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
        pending().retain(|p| p != &self.path);
    }
}

/// A temporary folder to remove if a signal ends the process (see
/// [`remove_on_signals`]); [`forget_on_signals`] once it is gone.
pub fn remove_dir_on_signals(dir: &Path) {
    pending().push(dir.to_path_buf());
}

pub fn forget_on_signals(dir: &Path) {
    pending().retain(|p| p != dir);
}

/// For commands (not the explorer, which handles its signals itself):
/// SIGINT, SIGTERM, SIGHUP and SIGQUIT remove the temporary files and
/// folders registered here, then end the process as the signal would have.
pub fn remove_on_signals() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
            let Ok(mut signals) =
                signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
            else {
                return;
            };
            let _ = std::thread::Builder::new()
                .name("tenx-signals".into())
                .spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        for p in pending().drain(..) {
                            if p.is_dir() {
                                let _ = std::fs::remove_dir_all(p);
                            } else {
                                let _ = std::fs::remove_file(p);
                            }
                        }
                        let _ = signal_hook::low_level::emulate_default_handler(sig);
                        std::process::exit(128 + sig);
                    }
                });
        });
    }
}

/// Writes a file whole or not at all, mode 0600, after [`check_target`]:
/// a temporary file in the same folder, synced, then renamed over the
/// target. Nothing is left behind on failure.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    check_target(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| OutputError::Refused("the output path has no file name".into()))?;
    let tmp = folder_of(path).join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut guard = TempFile::register(tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o.open(&guard.path).map_err(OutputError::io(path))?;
    let mut w = std::io::BufWriter::new(file);
    write(&mut w)
        .and_then(|_| w.flush())
        .and_then(|_| w.get_ref().sync_all())
        .map_err(OutputError::io(path))?;
    drop(w);
    // The target may have changed since the check: look again just before.
    check_target(path)?;
    std::fs::rename(&guard.path, path).map_err(OutputError::io(path))?;
    guard.done = true;
    Ok(())
}

/// Writes `bytes` to an output: standard output, or a file whole.
pub fn write_output(out: &Output, bytes: &[u8]) -> Result<(), OutputError> {
    match out {
        Output::Stdout => {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes)
                .and_then(|_| o.flush())
                .map_err(OutputError::io(Path::new("standard output")))
        }
        Output::File(p) => write_atomic(p, |w| w.write_all(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("tenx-outfile-")
            .tempdir()
            .expect("temp dir")
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_or_panicking_write_leaves_the_old_file_and_no_temporary_file() {
        let d = dir();
        let path = d.path().join("out.json");
        std::fs::write(&path, b"old").expect("write");
        let r = write_atomic(&path, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        let e = format!("{:#}", r.expect_err("fails"));
        assert!(e.contains("out.json") && e.contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert_eq!(entries(d.path()), ["out.json"]);
        let p2 = path.clone();
        let r = std::panic::catch_unwind(move || {
            let _ = write_atomic(&p2, |w| {
                w.write_all(b"partial")?;
                panic!("the writer panicked");
            });
        });
        assert!(r.is_err());
        assert_eq!(entries(d.path()), ["out.json"]);
        assert!(pending().is_empty());
        write_atomic(&path, |w| w.write_all(b"new")).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(entries(d.path()), ["out.json"]);
    }

    #[test]
    fn only_regular_files_and_new_paths_are_written() {
        let d = dir();
        let d = d.path();
        check_target(&d.join("new.json")).expect("a new path");
        std::fs::write(d.join("file.json"), b"x").expect("write");
        check_target(&d.join("file.json")).expect("a regular file");
        let e = format!("{:#}", check_target(d).expect_err("a directory"));
        assert!(e.contains("is a directory"), "{e}");
        let e = format!(
            "{:#}",
            check_target(&d.join("no/such/x.json")).expect_err("no folder")
        );
        assert!(
            e.contains(&format!(
                "the folder {} does not exist",
                d.join("no/such").display()
            )),
            "{e}"
        );
        assert!(!e.contains(".tmp"), "{e}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.join("file.json"), d.join("link.json")).expect("link");
            let e = format!(
                "{:#}",
                write_atomic(&d.join("link.json"), |w| w.write_all(b"y")).expect_err("a link")
            );
            assert!(
                e.contains("link.json") && e.contains("a symbolic link"),
                "{e}"
            );
            assert!(
                std::fs::symlink_metadata(d.join("link.json"))
                    .expect("meta")
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(std::fs::read(d.join("file.json")).expect("read"), b"x");
            let e = format!(
                "{:#}",
                check_target(Path::new("/dev/null")).expect_err("a device")
            );
            assert!(e.contains("a character device"), "{e}");
        }
    }
}
