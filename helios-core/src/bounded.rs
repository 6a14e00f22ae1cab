//! Size caps on everything Helios reads: files named by users or found in a scan directory, and
//! HTTP bodies from Lacework and OPA (read under these caps by [`crate::http`]). A reader past its cap stops and says so, instead of
//! growing until the process runs out of memory (`--scan-file /dev/zero`, a 1 GB sparse file, a
//! 200 MB search page).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest scan file read (a Lacework assessment of tens of thousands of findings is a few
/// tens of MiB).
pub const MAX_SCAN_FILE: u64 = 64 * 1024 * 1024;
/// Largest Lacework response body (one search page; Lacework pages hold at most 5,000 rows).
pub const MAX_LACEWORK_BODY: u64 = 32 * 1024 * 1024;
/// Largest OPA Data API response (a decision document).
pub const MAX_OPA_BODY: u64 = 16 * 1024 * 1024;
/// Longest identifier kept in a report (vulnerability id, package name, version, namespace).
pub const MAX_FIELD_LEN: usize = 256;
/// Longest free text kept in a report (the scan's `error`).
pub const MAX_TEXT_LEN: usize = 1024;

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// Reads a regular file of at most `cap` bytes as UTF-8. Devices, FIFOs and directories are
/// refused before they are opened (opening a FIFO would block); the message never quotes the
/// file's contents.
pub(crate) fn read_file(path: &Path, cap: u64, what: &str) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let refuse = |reason: String| Error::invalid(format!("{what} {}", path.display()), reason);
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.len() > cap {
        return Err(refuse(format!(
            "{} MiB, more than the {} MiB a {what} may hold",
            mib(meta.len()),
            mib(cap)
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // The size may change between the check and the read; `take` holds the cap regardless.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(refuse(format!(
            "more than the {} MiB a {what} may hold",
            mib(cap)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        refuse(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub(crate) fn cap_field(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push('…');
}

impl crate::scan::ScanReport {
    /// Cuts identifiers and text to [`MAX_FIELD_LEN`] / [`MAX_TEXT_LEN`]: a report's strings end
    /// up in policy inputs, denial messages, artifacts and logs, so a 10 MB `vulnId` must not.
    pub(crate) fn cap_fields(&mut self) {
        for s in [&mut self.id, &mut self.scanned_at].into_iter().flatten() {
            cap_field(s, MAX_FIELD_LEN);
        }
        if let Some(e) = &mut self.error {
            cap_field(e, MAX_TEXT_LEN);
        }
        cap_field(&mut self.source, MAX_FIELD_LEN);
        for v in std::sync::Arc::make_mut(&mut self.vulnerabilities) {
            cap_field(&mut v.id, MAX_FIELD_LEN);
            cap_field(&mut v.status, MAX_FIELD_LEN);
            cap_field(&mut v.package.name, MAX_FIELD_LEN);
            cap_field(&mut v.package.version, MAX_FIELD_LEN);
            for s in [&mut v.package.namespace, &mut v.fix.version]
                .into_iter()
                .flatten()
            {
                cap_field(s, MAX_FIELD_LEN);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_on_char_boundaries() {
        let mut s = "é".repeat(300);
        cap_field(&mut s, MAX_FIELD_LEN);
        assert!(s.len() <= MAX_FIELD_LEN && s.ends_with('…'));
        let mut short = "CVE-2024-1".to_string();
        cap_field(&mut short, MAX_FIELD_LEN);
        assert_eq!(short, "CVE-2024-1");
    }

    #[test]
    fn devices_and_oversized_files_are_refused_without_reading_them() -> Result<()> {
        let err = read_file(Path::new("/dev/zero"), MAX_SCAN_FILE, "scan file").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("not a regular file"), "{text}");

        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let path = dir.path().join("big.json");
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        // Sparse: no disk space, but a length past the cap.
        file.set_len(MAX_SCAN_FILE + 1)
            .map_err(|e| Error::io(&path, e))?;
        let err = read_file(&path, MAX_SCAN_FILE, "scan file").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("more than the 64 MiB"), "{text}");
        Ok(())
    }
}
