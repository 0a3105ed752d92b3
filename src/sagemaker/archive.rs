//! `model.tar.gz`, SageMaker's model archive: packed from the files training
//! produced (in memory, the artifact at the archive's root, the layout
//! SageMaker itself produces from `/opt/ml/model`), and unpacked safely for
//! `serve --model-uri` (no absolute paths, no `..`, no links or special
//! files; nothing half-unpacked is left behind).

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why an archive could not be made, fetched or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Transfer(#[from] crate::s3::S3Error),
    /// `source` comes from `fs_err`, which names the path.
    #[error("{source}")]
    Io {
        #[from]
        source: std::io::Error,
    },
    #[error("model archive {archive}: {problem}")]
    Refused { archive: String, problem: Refusal },
}

/// What was wrong inside an archive.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not a tar.gz archive: {0}")]
    NotTarGz(#[source] std::io::Error),
    #[error("corrupt archive: {0}")]
    Corrupt(#[source] std::io::Error),
    #[error("entry '{0}' escapes the model folder")]
    Escapes(String),
    #[error("entry '{0}' is a link or special file, refused")]
    Link(String),
}

/// Packs `(name, bytes)` files into `model.tar.gz` bytes, at the archive's
/// root, in the order given.
pub fn pack(files: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, *bytes)?;
    }
    tar.into_inner()?.finish()
}

/// Fetches `model.tar.gz` from S3 (`s3://…`) or a local path and unpacks it
/// into a new temporary folder; returns the folder (removed when the guard
/// drops) and the directory holding the model files.
pub fn fetch_model(uri: &str) -> Result<(tempfile::TempDir, PathBuf), ArchiveError> {
    let bytes = if uri.starts_with("s3://") {
        let uri = crate::s3::S3Uri::parse(uri)?;
        crate::s3::S3::connect()?.get(&uri)?
    } else {
        fs_err::read(uri)?
    };
    let tmp = tempfile::Builder::new().prefix("ccfraud-model").tempdir()?;
    let dir = unpack(uri, &bytes, &tmp.path().join("model"))?;
    Ok((tmp, dir))
}

/// Unpacks `model.tar.gz` bytes into `dest` (which must not exist yet),
/// refusing absolute paths, `..`, links and special files. When the model is
/// inside one nested folder, returns that folder; else `dest`.
pub fn unpack(archive: &str, bytes: &[u8], dest: &Path) -> Result<PathBuf, ArchiveError> {
    let refused = |problem| ArchiveError::Refused {
        archive: archive.to_string(),
        problem,
    };
    let tmp = dest.with_extension("unpacking");
    let _ = fs_err::remove_dir_all(&tmp);
    fs_err::create_dir_all(&tmp)?;
    let result = (|| {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        for entry in ar.entries().map_err(|e| refused(Refusal::NotTarGz(e)))? {
            let mut entry = entry.map_err(|e| refused(Refusal::Corrupt(e)))?;
            let path = entry
                .path()
                .map_err(|e| refused(Refusal::Corrupt(e)))?
                .into_owned();
            let shown = path.display().to_string();
            let rel = crate::safe_relative(&path);
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                if let Some(rel) = rel {
                    fs_err::create_dir_all(tmp.join(rel))?;
                }
                continue;
            }
            let rel = rel.ok_or_else(|| refused(Refusal::Escapes(shown.clone())))?;
            if !kind.is_file() {
                return Err(refused(Refusal::Link(shown)));
            }
            let out = tmp.join(&rel);
            if let Some(parent) = out.parent() {
                fs_err::create_dir_all(parent)?;
            }
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| refused(Refusal::Corrupt(e)))?;
            fs_err::write(&out, &data)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs_err::remove_dir_all(&tmp);
        return Err(e);
    }
    fs_err::rename(&tmp, dest)?;
    // A model packed as `folder/ccfraud-model.json` is served from `folder`.
    let artifact = crate::model::ARTIFACT_FILE;
    if !dest.join(artifact).is_file() {
        let subdirs: Vec<PathBuf> = fs_err::read_dir(dest)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        if let [only] = subdirs.as_slice() {
            if only.join(artifact).is_file() {
                return Ok(only.clone());
            }
        }
    }
    Ok(dest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            // bypass the builder's own path checks to forge hostile names
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn pack_unpack_round_trip_and_nested_folder() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = pack(&[("ccfraud-model.json", b"artifact"), ("metrics.json", b"{}")]).unwrap();
        let out = unpack("m.tar.gz", &bytes, &dir.path().join("out")).unwrap();
        assert_eq!(out, dir.path().join("out"));
        assert_eq!(
            std::fs::read(out.join("ccfraud-model.json")).unwrap(),
            b"artifact"
        );
        assert_eq!(std::fs::read(out.join("metrics.json")).unwrap(), b"{}");

        let nested = tar_gz(&[
            ("inner/", tar::EntryType::Directory, b""),
            ("inner/ccfraud-model.json", tar::EntryType::Regular, b"a"),
        ]);
        let out = unpack("n.tar.gz", &nested, &dir.path().join("nested")).unwrap();
        assert!(out.ends_with("nested/inner"), "{}", out.display());
    }

    #[test]
    fn hostile_archives_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [
            ("../evil.json", tar::EntryType::Regular),
            ("/abs.json", tar::EntryType::Regular),
            ("a/../../evil", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
        ] {
            let bytes = tar_gz(&[(name, kind, b"x")]);
            let dest = dir.path().join("dest");
            let e = unpack("bad.tar.gz", &bytes, &dest).unwrap_err().to_string();
            assert!(e.contains("escapes") || e.contains("link"), "{name}: {e}");
            assert!(!dest.exists() && !dest.with_extension("unpacking").exists());
        }
        let e = unpack("junk.tar.gz", b"not gzip at all", &dir.path().join("d")).unwrap_err();
        assert!(e.to_string().contains("junk.tar.gz"), "{e}");
    }
}
