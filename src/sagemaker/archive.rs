//! `model.tar.gz`, SageMaker's model archive: packed from the files training
//! produced (in memory, the artifact at the archive's root, the layout
//! SageMaker itself produces from `/opt/ml/model`), and unpacked safely for
//! `serve --model-uri` (no absolute paths, no `..`, no links or special
//! files; nothing half-unpacked is left behind). Unpacking is bounded
//! ([`Limits`]): the compressed archive is sized before it is read, entries
//! stream to disk, and the decompressed stream, each entry and the number of
//! entries are capped, so a decompression bomb is refused at the entry
//! that would pass the cap, before its bytes are written.

use std::cell::Cell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Default of `serve --max-unpacked-mb`.
pub const DEFAULT_MAX_UNPACKED_MB: u64 = 1024;
/// Most entries an archive may have (a model archive holds a handful).
pub const MAX_ENTRIES: usize = 10_000;

/// What unpacking a model archive may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest compressed archive, and largest decompressed tar stream (the
    /// files plus tar's headers), in bytes.
    pub max_bytes: u64,
    /// Most entries.
    pub max_entries: usize,
}

impl Limits {
    /// `max_unpacked_mb` MiB and [`MAX_ENTRIES`] entries.
    pub fn new(max_unpacked_mb: std::num::NonZeroU64) -> Limits {
        Limits {
            max_bytes: max_unpacked_mb.get().saturating_mul(1 << 20),
            max_entries: MAX_ENTRIES,
        }
    }
}

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
    #[error("{bytes} bytes, more than the limit of {limit} bytes (--max-unpacked-mb)")]
    ArchiveTooLarge { bytes: u64, limit: u64 },
    #[error("entry '{entry}' ({bytes} bytes) takes the unpacked size past the limit of {limit} bytes (--max-unpacked-mb)")]
    EntryTooLarge {
        entry: String,
        bytes: u64,
        limit: u64,
    },
    #[error("unpacks to more than the limit of {limit} bytes (--max-unpacked-mb)")]
    Unpacked { limit: u64 },
    #[error("more than {limit} entries")]
    TooManyEntries { limit: usize },
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

/// Fetches `model.tar.gz` from S3 (`s3://…`) or a local path (a regular
/// file) and unpacks it into a new temporary folder within `limits`;
/// returns the folder (removed when the guard drops, or at once on error)
/// and the directory holding the model files.
pub fn fetch_model(
    uri: &str,
    limits: Limits,
) -> Result<(tempfile::TempDir, PathBuf), ArchiveError> {
    let too_large = |bytes| ArchiveError::Refused {
        archive: uri.to_string(),
        problem: Refusal::ArchiveTooLarge {
            bytes,
            limit: limits.max_bytes,
        },
    };
    let tmp = tempfile::Builder::new().prefix("ccfraud-model").tempdir()?;
    let dest = tmp.path().join("model");
    let dir = if uri.starts_with("s3://") {
        let uri = crate::s3::S3Uri::parse(uri)?;
        let bytes = match crate::s3::S3::connect()?.get(&uri, limits.max_bytes) {
            Err(crate::s3::S3Error::TooLarge { bytes, .. }) => return Err(too_large(bytes)),
            other => other?,
        };
        unpack(&uri.to_string(), bytes.as_slice(), &dest, limits)?
    } else {
        let (file, len) = crate::open_regular(Path::new(uri))?;
        if len > limits.max_bytes {
            return Err(too_large(len));
        }
        unpack(uri, file, &dest, limits)?
    };
    Ok((tmp, dir))
}

/// A reader that fails once more than `limit` bytes have come through it,
/// counting them in `read`.
struct Capped<'a, R> {
    inner: R,
    read: &'a Cell<u64>,
    limit: u64,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        if self.read.get() > self.limit {
            return Err(std::io::Error::other("decompressed size limit passed"));
        }
        Ok(n)
    }
}

/// Unpacks a `model.tar.gz` stream into `dest` (which must not exist yet),
/// refusing absolute paths, `..`, links and special files, and whatever
/// passes `limits`; entries stream to disk. When the model is inside one
/// nested folder, returns that folder; else `dest`.
pub fn unpack(
    archive: &str,
    gz: impl Read,
    dest: &Path,
    limits: Limits,
) -> Result<PathBuf, ArchiveError> {
    let refused = |problem| ArchiveError::Refused {
        archive: archive.to_string(),
        problem,
    };
    let tmp = dest.with_extension("unpacking");
    let _ = fs_err::remove_dir_all(&tmp);
    fs_err::create_dir_all(&tmp)?;
    // Bytes out of the decompressor so far: tar reads its own metadata
    // entries (long names, PAX) whole, so they are bounded here.
    let read = Cell::new(0);
    let limit = limits.max_bytes;
    let result = (|| {
        let stream = Capped {
            inner: flate2::read::GzDecoder::new(gz),
            read: &read,
            limit,
        };
        // A failed read past the cap is the cap's refusal, whatever tar says.
        let broken = |e| {
            refused(if read.get() > limit {
                Refusal::Unpacked { limit }
            } else {
                Refusal::Corrupt(e)
            })
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut ar = tar::Archive::new(stream);
        let entries = ar.entries().map_err(|e| refused(Refusal::NotTarGz(e)))?;
        for (i, entry) in entries.enumerate() {
            if i >= limits.max_entries {
                let limit = limits.max_entries;
                return Err(refused(Refusal::TooManyEntries { limit }));
            }
            let mut entry = entry.map_err(broken)?;
            let path = entry.path().map_err(broken)?.into_owned();
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
            let bytes = entry.size();
            if read.get().saturating_add(bytes) > limit {
                return Err(refused(Refusal::EntryTooLarge {
                    entry: shown,
                    bytes,
                    limit,
                }));
            }
            let out = tmp.join(&rel);
            if let Some(parent) = out.parent() {
                fs_err::create_dir_all(parent)?;
            }
            // Copied by hand: a read error is the archive's, a write error
            // (the disk) is I/O.
            let mut file = fs_err::File::create(&out)?;
            loop {
                let n = entry.read(&mut buf).map_err(broken)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])?;
            }
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

    const LIMITS: Limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 10,
    };

    /// Unpacks `bytes` within [`LIMITS`] and returns the refusal, checking
    /// that nothing is left behind.
    fn refusal(bytes: &[u8]) -> Refusal {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let e = unpack("bomb.tar.gz", bytes, &dest, LIMITS).unwrap_err();
        assert!(
            e.to_string().starts_with("model archive bomb.tar.gz: "),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "left behind"
        );
        match e {
            ArchiveError::Refused { problem, .. } => problem,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bombs_are_refused_at_the_cap() {
        let zeros = vec![0u8; 3 << 19]; // 1.5 MiB, past the 1 MiB cap
        let bomb = tar_gz(&[("ccfraud-model.json", tar::EntryType::Regular, &zeros)]);
        assert!(bomb.len() < 16 << 10, "{}", bomb.len());
        let p = refusal(&bomb);
        assert!(
            matches!(&p, Refusal::EntryTooLarge { entry, bytes, limit: 1048576 } if entry == "ccfraud-model.json" && *bytes == 3 << 19),
            "{p}"
        );
        // each entry under the cap, the total over it
        let third = vec![0u8; 400 << 10];
        let p = refusal(&tar_gz(&[
            ("a", tar::EntryType::Regular, &third),
            ("b", tar::EntryType::Regular, &third),
            ("c", tar::EntryType::Regular, &third),
        ]));
        assert!(
            matches!(&p, Refusal::EntryTooLarge { entry, .. } if entry == "c"),
            "{p}"
        );
        // tar reads a long name whole: the stream cap bounds it
        let p = refusal(&tar_gz(&[("long", tar::EntryType::GNULongName, &zeros)]));
        assert!(matches!(p, Refusal::Unpacked { limit: 1048576 }), "{p}");
        let many: Vec<_> = (0..11)
            .map(|_| ("f", tar::EntryType::Regular, &b"x"[..]))
            .collect();
        let p = refusal(&tar_gz(&many));
        assert!(matches!(p, Refusal::TooManyEntries { limit: 10 }), "{p}");
        // at the cap is fine
        let dir = tempfile::tempdir().unwrap();
        let fits = tar_gz(&[("m", tar::EntryType::Regular, &third)]);
        unpack("ok.tar.gz", &fits[..], &dir.path().join("ok"), LIMITS).unwrap();
    }

    /// A local archive as large as the limit is fetched; a byte over it is
    /// refused before it is read.
    #[test]
    fn a_local_archive_at_the_limit_is_fetched_and_one_byte_over_is_not() {
        let dir = tempfile::tempdir().unwrap();
        // the same tar stream behind a 4 KiB gzip comment: the archive is
        // larger than the stream it unpacks to, so only the archive's own
        // size can meet the limit
        use std::io::{Read as _, Write as _};
        let mut stream = Vec::new();
        let packed = pack(&[("ccfraud-model.json", b"artifact")]).unwrap();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut stream)
            .unwrap();
        let mut gz = flate2::GzBuilder::new()
            .comment(vec![b'x'; 4096])
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&stream).unwrap();
        let bytes = gz.finish().unwrap();
        assert!(
            bytes.len() > stream.len(),
            "{} {}",
            bytes.len(),
            stream.len()
        );
        let path = dir.path().join("model.tar.gz");
        std::fs::write(&path, &bytes).unwrap();
        let uri = path.to_str().unwrap();
        let len = bytes.len() as u64;
        let at = |max_bytes| Limits {
            max_bytes,
            max_entries: 10,
        };
        let (_tmp, out) = fetch_model(uri, at(len)).unwrap();
        assert_eq!(
            std::fs::read(out.join("ccfraud-model.json")).unwrap(),
            b"artifact"
        );
        match fetch_model(uri, at(len - 1)) {
            Err(ArchiveError::Refused {
                problem: Refusal::ArchiveTooLarge { bytes, limit },
                ..
            }) => assert_eq!((bytes, limit), (len, len - 1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pack_unpack_round_trip_and_nested_folder() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = pack(&[("ccfraud-model.json", b"artifact"), ("metrics.json", b"{}")]).unwrap();
        let out = unpack("m.tar.gz", &bytes[..], &dir.path().join("out"), LIMITS).unwrap();
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
        let out = unpack("n.tar.gz", &nested[..], &dir.path().join("nested"), LIMITS).unwrap();
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
            let e = unpack("bad.tar.gz", &bytes[..], &dest, LIMITS)
                .unwrap_err()
                .to_string();
            assert!(e.contains("escapes") || e.contains("link"), "{name}: {e}");
            assert!(!dest.exists() && !dest.with_extension("unpacking").exists());
        }
        let e = unpack(
            "junk.tar.gz",
            &b"not gzip at all"[..],
            &dir.path().join("d"),
            LIMITS,
        )
        .unwrap_err();
        assert!(e.to_string().contains("junk.tar.gz"), "{e}");
    }
}
