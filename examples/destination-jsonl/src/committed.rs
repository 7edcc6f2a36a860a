//! A file's committed length, kept in `<file>.committed` beside it: written after each commit
//! (temp file + rename), and the file is cut back to it on open and after a failure.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use cdk::{Error, IoResultExt, Result};

/// The committed length of one data file.
pub struct CommittedFile {
    /// The data file (named in errors).
    path: PathBuf,
    marker: PathBuf,
    length: u64,
}

impl CommittedFile {
    /// The marker of `path`.
    pub fn marker_of(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".committed");
        path.with_file_name(name)
    }

    /// Opens `path` for appending after its committed part: what a crashed sync left past
    /// the last commit is cut off. A file without a marker counts as committed as it is.
    pub fn open(path: &Path) -> Result<(File, Self)> {
        let io =
            |e: std::io::Error| Error::system(format!("cannot open '{}': {e}", path.display()));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let marker = Self::marker_of(path);
        let current = file.metadata().map_err(io)?.len();
        let length = match std::fs::read_to_string(&marker) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0).min(current),
            Err(_) => current,
        };
        if length < current {
            file.set_len(length).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::Start(length)).map_err(io)?;
        let committed = Self {
            path: path.to_path_buf(),
            marker,
            length,
        };
        committed.write_marker()?;
        Ok((file, committed))
    }

    /// Makes what was written durable and records the new length.
    pub fn commit(&mut self, file: &File) -> Result<()> {
        file.sync_data().with_path(&self.path)?;
        self.length = file.metadata().with_path(&self.path)?.len();
        self.write_marker()
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cuts the file back to its last committed length.
    pub fn roll_back(&self, file: &File) -> Result<()> {
        file.set_len(self.length).with_path(&self.path)?;
        file.sync_data().with_path(&self.path)
    }

    /// The data file was renamed to `path`: its marker follows.
    pub fn moved_to(&mut self, path: &Path) -> Result<()> {
        let _ = std::fs::remove_file(&self.marker);
        self.path = path.to_path_buf();
        self.marker = Self::marker_of(path);
        self.write_marker()
    }

    fn write_marker(&self) -> Result<()> {
        let tmp = self.marker.with_extension("committed.tmp");
        std::fs::write(&tmp, self.length.to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.marker))
            .map_err(|e| Error::system(format!("cannot write '{}': {e}", self.marker.display())))
    }
}

/// Removes the temp files (and markers) of other generations of `target`'s overwrites.
pub fn remove_other_generations(target: &Path, keep: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let prefix = format!("{}.gen", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let keep_marker = CommittedFile::marker_of(keep);
    for entry in entries.flatten() {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&prefix) && path != keep && path != keep_marker {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn uncommitted_bytes_are_cut_on_reopen_and_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let (mut file, mut c) = CommittedFile::open(&path).unwrap();
        file.write_all(b"a\n").unwrap();
        c.commit(&file).unwrap();
        file.write_all(b"b\n").unwrap();
        drop(file); // a crash: "b" was never committed
        let (mut file, c) = CommittedFile::open(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\n");
        file.write_all(b"c\n").unwrap();
        c.roll_back(&file).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\n");
    }
}
