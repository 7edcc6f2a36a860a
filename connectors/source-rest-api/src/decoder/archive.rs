//! `GzipDecoder` and `ZipfileDecoder`: a compressed body decompressed, then read by the inner
//! decoder. As in Airbyte, a gzip decoder passes a body that is not gzip (no `1f 8b` magic)
//! through unchanged, and every file of a zip archive is read in turn.

use std::io::Read;

use cdk::{Error, Result};

/// Decompresses gzip members (several concatenated members read as one), or returns `body`
/// when it is not gzip.
pub fn gunzip(body: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .read_to_end(&mut out)
        .map_err(|e| Error::system(format!("the response is not valid gzip: {e}")))?;
    Ok(std::borrow::Cow::Owned(out))
}

/// The files of a zip archive, in order: (name, content).
pub fn unzip(body: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body)).map_err(|e| {
        Error::system(format!(
            "received an invalid zip file in response ({} bytes): {e}",
            body.len()
        ))
    })?;
    let mut files = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut f = archive
            .by_index(i)
            .map_err(|e| Error::system(format!("cannot read file {i} of the zip file: {e}")))?;
        let name = f
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("file {i}"));
        let mut content = Vec::new();
        f.read_to_end(&mut content).map_err(|e| {
            Error::system(format!("cannot decompress '{name}' of the zip file: {e}"))
        })?;
        files.push((name, content));
    }
    Ok(files)
}
