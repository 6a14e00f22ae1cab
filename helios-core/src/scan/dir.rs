//! A [`ScanSource`] over a directory of scan files (the formats `helios gate --scan-file`
//! reads), looked up by image digest.
//!
//! Each `*.json` file is indexed under the digests it covers: Lacework rows name theirs in
//! `evalCtx.image_info.digest` (or `imageId`); any file may instead be named after its image,
//! `sha256-<hex>.json`, which is the only way to index a Helios report file.
//!
//! Each report is parsed once and kept until its file changes (another modification time,
//! length or inode) or the directory does; the webhook's lookups then share it, and its
//! engine value, instead of reading and parsing the file again.
//!
//! Only regular files are read, each of at most 64 MiB. A symbolic link is followed when it
//! stays inside the directory (a Kubernetes ConfigMap or Secret volume links every file to
//! `..data/`); one pointing outside is skipped unless [`DirSource::allow_outside_symlinks`] says
//! otherwise, so a link cannot make the webhook read, and quote, files it was not given.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::scan::{Lookup, ScanReport, ScanSource, ScanStatus, lacework};

/// The `source` of reports of images without a file.
pub const SOURCE: &str = "file";

/// Scans read from a directory, by digest.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    outside_symlinks: bool,
    index: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    modified: Option<SystemTime>,
    files: HashMap<String, PathBuf>,
    /// Reports parsed so far, by digest, with the stamp of the file they were read from.
    reports: HashMap<String, (FileStamp, ScanReport)>,
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of the file `path` leads to (symbolic links followed); `None` when the
    /// system tells no modification time, and the file is then read on every lookup.
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            modified: meta.modified().ok()?,
            len: meta.len(),
            inode,
        })
    }
}

impl DirSource {
    /// Indexes `dir`. Files that are not scans are skipped with a warning; an unreadable
    /// directory is an error.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let index = build_index(&dir, false)?;
        Ok(DirSource {
            dir,
            outside_symlinks: false,
            index: Mutex::new(index),
        })
    }

    /// Whether symbolic links to files outside the directory are followed (default: no, they
    /// are skipped with a warning). Re-indexes the directory.
    pub fn allow_outside_symlinks(mut self, allow: bool) -> Result<Self> {
        self.outside_symlinks = allow;
        *self.index() = build_index(&self.dir, allow)?;
        Ok(self)
    }

    /// The digests indexed, sorted.
    pub fn digests(&self) -> Vec<String> {
        let mut d: Vec<String> = self.index().files.keys().cloned().collect();
        d.sort();
        d
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        // The index is replaced whole; a panic elsewhere cannot leave it half-built.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file of `digest`, re-indexing first if the directory changed since.
    fn file_of(&self, digest: &str) -> Result<Option<PathBuf>> {
        let modified = dir_modified(&self.dir);
        if modified.is_none() || modified != self.index().modified {
            let fresh = build_index(&self.dir, self.outside_symlinks)?;
            *self.index() = fresh;
        }
        Ok(self.index().files.get(digest).cloned())
    }

    /// The report of `digest` in `path`: the one parsed before while the file is unchanged.
    fn report(&self, path: &Path, digest: &str) -> Result<ScanReport> {
        // Stamped before reading: a change during the read shows as a new stamp next time.
        let stamp = FileStamp::of(path);
        if let Some(stamp) = &stamp
            && let Some((seen, report)) = self.index().reports.get(digest)
            && seen == stamp
        {
            return Ok(report.clone());
        }
        // The reason goes to the log only: the user who sees the denial did not write the
        // file, and parse errors can quote what it holds.
        let report = ScanReport::from_scan_file(path, Some(digest)).map_err(|e| {
            tracing::warn!(file = %path.display(), error = %e, "unreadable scan file");
            let name = path
                .file_name()
                .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned());
            Error::invalid(
                format!("scan file {name}"),
                "unreadable or malformed; the webhook's log has the details",
            )
        })?;
        if let Some(stamp) = stamp {
            self.index()
                .reports
                .insert(digest.to_string(), (stamp, report.clone()));
        }
        Ok(report)
    }
}

fn dir_modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|m| m.modified()).ok()
}

fn build_index(dir: &Path, outside_symlinks: bool) -> Result<Index> {
    let modified = dir_modified(dir);
    let root = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = HashMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| match readable(p, &root, outside_symlinks) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(file = %p.display(), why, "skipping scan file");
                false
            }
        })
        .collect();
    entries.sort();
    for path in entries {
        match digests_of(&path) {
            Ok(digests) => {
                for d in digests {
                    files.entry(d).or_insert_with(|| path.clone());
                }
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "skipping scan file"),
        }
    }
    Ok(Index {
        modified,
        files,
        reports: HashMap::new(),
    })
}

/// Whether the directory entry `path` may be read: a regular file, or a symbolic link to one
/// inside `root` (anywhere with `outside_symlinks`).
fn readable(
    path: &Path,
    root: &Path,
    outside_symlinks: bool,
) -> std::result::Result<(), &'static str> {
    let meta = std::fs::symlink_metadata(path).map_err(|_| "unreadable")?;
    if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).map_err(|_| "a dangling symbolic link")?;
        if !outside_symlinks && !target.starts_with(root) {
            return Err("a symbolic link out of the scan directory (see allow_outside_symlinks)");
        }
        if !std::fs::metadata(&target).is_ok_and(|m| m.is_file()) {
            return Err("a symbolic link to something other than a regular file");
        }
        return Ok(());
    }
    if meta.is_file() {
        Ok(())
    } else {
        Err("not a regular file")
    }
}

/// The digest in a `sha256-<hex>.json` name.
fn digest_from_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let hex = stem.strip_prefix("sha256-")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn digests_of(path: &Path) -> Result<Vec<String>> {
    if let Some(d) = digest_from_name(path) {
        return Ok(vec![d]);
    }
    let text = crate::bounded::read_file(path, crate::bounded::MAX_SCAN_FILE, "scan file")?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("scan file {}", path.display()), e))?;
    let rows = match value {
        Value::Array(rows) => rows,
        Value::Object(mut map) => match map.remove("data") {
            Some(Value::Array(rows)) => rows,
            _ => {
                return Err(Error::invalid(
                    format!("scan file {}", path.display()),
                    "a Helios report file must be named sha256-<hex>.json",
                ));
            }
        },
        _ => Vec::new(),
    };
    let rows = lacework::parse_rows(rows)?;
    let mut digests: Vec<String> = rows
        .iter()
        .filter_map(|r| r.digest().or(r.image_id()).map(str::to_string))
        .collect();
    digests.sort();
    digests.dedup();
    Ok(digests)
}

#[async_trait]
impl ScanSource for DirSource {
    /// The scan of the image's first candidate digest (platform manifest, pinned digest,
    /// resolved digest) that a file covers; `not_found` when none does or the image has no
    /// digest at all.
    async fn scan(&self, image: &ImageRef, _lookup: Lookup) -> Result<ScanReport> {
        let candidates = image.candidate_digests();
        if candidates.is_empty() {
            return Ok(ScanReport::without_findings(
                ScanStatus::NotFound,
                SOURCE,
                Some("the image has no digest; scan files are looked up by digest".into()),
            ));
        }
        for digest in candidates {
            if let Some(path) = self.file_of(digest)? {
                return self.report(&path, digest);
            }
        }
        Ok(ScanReport::without_findings(
            ScanStatus::NotFound,
            SOURCE,
            None,
        ))
    }
}
