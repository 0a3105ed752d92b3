//! Amazon S3 at the edges, for running outside SageMaker (ECS, Kubernetes, a
//! laptop) where nothing downloads data or unpacks the model for us:
//! `upload-data` (the lab's step 1), `train --train/--test/--output s3://…`,
//! and `serve --model-uri`. Transport only: what the objects hold (the
//! model archive, its files) is `crate::sagemaker`'s business.
//!
//! Credentials and region come from the standard AWS chain (env, profile,
//! container/instance roles; region falls back to `us-east-1`).
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` point at S3-compatible stores;
//! path-style addressing is used with a custom endpoint, or when
//! `CCFRAUD_S3_PATH_STYLE=true`.
//!
//! Nothing partial is left behind: downloads go to a temporary name and are
//! renamed, uploads are single PUTs or multipart uploads that are completed
//! only when every part is in (and aborted otherwise).

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

/// Files above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of each part of a multipart upload.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Why an S3 transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("'{0}' is not an s3://bucket/key URI")]
    Uri(String),
    #[error("{op} {uri}: {reason}")]
    Request {
        op: &'static str,
        uri: String,
        reason: String,
    },
    #[error("download {uri}: {bytes} bytes, more than the limit of {limit}")]
    TooLarge { uri: String, bytes: u64, limit: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = S3Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> S3Error + '_ {
    move |source| S3Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// `s3://bucket/key`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    pub fn parse(s: &str) -> Result<S3Uri> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| S3Error::Uri(s.to_string()))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains(char::is_whitespace) {
            return Err(S3Error::Uri(s.to_string()));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// This URI as a prefix (ending in `/` unless empty) joined with `name`.
    pub fn join(&self, name: &str) -> S3Uri {
        let mut key = self.key.clone();
        if !key.is_empty() && !key.ends_with('/') {
            key.push('/');
        }
        key.push_str(name);
        S3Uri {
            bucket: self.bucket.clone(),
            key,
        }
    }
}

impl S3Error {
    fn request(op: &'static str, uri: &S3Uri, reason: impl Into<String>) -> S3Error {
        S3Error::Request {
            op,
            uri: uri.to_string(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Turns an SDK error into one line a user can act on.
fn reason<E>(e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let status = se.raw().status().as_u16();
            match (err.code(), err.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                // HEAD answers carry no body, so only the status tells.
                _ => match status {
                    403 => "AccessDenied (HTTP 403): the credentials were refused, or they may not use this bucket".into(),
                    404 => "NotFound (HTTP 404)".into(),
                    s => format!("HTTP {s} from S3"),
                },
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            format!("cannot reach the S3 endpoint: {}", DisplayErrorContext(&e))
        }
        _ => format!("{}", DisplayErrorContext(&e)),
    }
}

/// A connected S3 client with its own small runtime (the rest of ccfraud is
/// synchronous).
pub struct S3 {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl S3 {
    /// Builds a client from the standard AWS configuration chain.
    pub fn connect() -> Result<S3> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err(Path::new("tokio runtime")))?;
        let client = rt.block_on(async {
            let region = aws_config::meta::region::RegionProviderChain::default_provider()
                .or_else("us-east-1");
            let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(region)
                .load()
                .await;
            let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some()
                || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
            let path_style = match std::env::var("CCFRAUD_S3_PATH_STYLE").ok().as_deref() {
                Some("true" | "1") => true,
                Some("false" | "0") => false,
                _ => custom_endpoint,
            };
            let s3conf = aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(path_style)
                .build();
            Client::from_conf(s3conf)
        });
        Ok(S3 { rt, client })
    }

    /// Fails clearly when the bucket does not exist or cannot be reached, so
    /// nothing is attempted (or trained) for a destination that cannot work.
    pub fn check_bucket(&self, uri: &S3Uri) -> Result<()> {
        self.rt.block_on(async {
            match self.client.head_bucket().bucket(&uri.bucket).send().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let not_found = matches!(&e, SdkError::ServiceError(se) if se.raw().status().as_u16() == 404);
                    Err(S3Error::request(
                        "check bucket of",
                        uri,
                        if not_found {
                            format!("NoSuchBucket: bucket '{}' does not exist", uri.bucket)
                        } else {
                            reason(e)
                        },
                    ))
                }
            }
        })
    }

    /// Keys under `uri` taken as a prefix (or the object itself), sorted.
    pub fn list(&self, uri: &S3Uri) -> Result<Vec<String>> {
        self.rt.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&uri.bucket)
                .prefix(&uri.key)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| S3Error::request("list", uri, reason(e)))?;
                for o in page.contents() {
                    if let Some(k) = o.key() {
                        if !k.ends_with('/') {
                            keys.push(k.to_string());
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    /// Reads one object into memory, refusing one of more than `max_bytes`
    /// by its length before its body is read (and while it is read, should
    /// the length be missing or wrong).
    pub fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>> {
        let err = |reason: String| S3Error::request("download", uri, reason);
        let too_large = |bytes| S3Error::TooLarge {
            uri: uri.to_string(),
            bytes,
            limit: max_bytes,
        };
        self.rt.block_on(async {
            let mut out = self
                .client
                .get_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .send()
                .await
                .map_err(|e| err(reason(e)))?;
            let length = out.content_length().map_or(0, |n| n.max(0) as u64);
            if length > max_bytes {
                return Err(too_large(length));
            }
            let mut bytes = Vec::with_capacity(length as usize);
            while let Some(chunk) = out.body.try_next().await.map_err(|e| err(e.to_string()))? {
                if (bytes.len() + chunk.len()) as u64 > max_bytes {
                    return Err(too_large((bytes.len() + chunk.len()) as u64));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        })
    }

    /// Downloads every object under the prefix `uri` into `dir`, keeping
    /// the relative key paths. Each file appears atomically. Returns the
    /// number of files; no object at all is an error.
    pub fn download_prefix(&self, uri: &S3Uri, dir: &Path) -> Result<usize> {
        let keys = self.list(uri)?;
        if keys.is_empty() {
            return Err(S3Error::request(
                "download",
                uri,
                "no objects under this prefix",
            ));
        }
        // Local paths are the keys relative to the URI's last `/`.
        let base = uri.key.rfind('/').map_or("", |i| &uri.key[..i + 1]);
        for key in &keys {
            let rel = crate::safe_relative(Path::new(key.strip_prefix(base).unwrap_or(key)))
                .ok_or_else(|| S3Error::Request {
                    op: "download",
                    uri: format!("s3://{}/{key}", uri.bucket),
                    reason: "key does not map to a safe local path".into(),
                })?;
            let dest = dir.join(rel);
            let obj = S3Uri {
                bucket: uri.bucket.clone(),
                key: key.clone(),
            };
            let bytes = self.get(&obj, u64::MAX)?;
            write_atomic(&dest, &bytes)?;
        }
        Ok(keys.len())
    }

    /// Deletes one object.
    pub fn delete(&self, uri: &S3Uri) -> Result<()> {
        self.rt.block_on(async {
            self.client
                .delete_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| S3Error::request("delete", uri, reason(e)))
        })
    }

    /// Uploads bytes as one object (a single PUT: all or nothing).
    pub fn put(&self, bytes: Vec<u8>, uri: &S3Uri) -> Result<()> {
        self.rt.block_on(async {
            self.client
                .put_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| S3Error::request("upload", uri, reason(e)))?;
            Ok(())
        })
    }

    /// Uploads a file: one PUT below [`MULTIPART_THRESHOLD`], else a
    /// multipart upload (aborted on any failure), with progress on stderr.
    pub fn upload_file(&self, path: &Path, uri: &S3Uri) -> Result<()> {
        let size = fs_err::metadata(path).map_err(io_err(path))?.len();
        if size < MULTIPART_THRESHOLD {
            let bytes = fs_err::read(path).map_err(io_err(path))?;
            return self.put(bytes, uri);
        }
        let err = |reason: String| S3Error::request("upload", uri, reason);
        self.rt.block_on(async {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .send()
                .await
                .map_err(|e| err(reason(e)))?;
            let upload_id = created
                .upload_id()
                .ok_or_else(|| err("no upload id returned".into()))?
                .to_string();
            let result = self.upload_parts(path, uri, &upload_id, size).await;
            match result {
                Ok(parts) => self
                    .client
                    .complete_multipart_upload()
                    .bucket(&uri.bucket)
                    .key(&uri.key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| err(reason(e))),
                Err(e) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&uri.bucket)
                        .key(&uri.key)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    Err(e)
                }
            }
        })
    }

    async fn upload_parts(
        &self,
        path: &Path,
        uri: &S3Uri,
        upload_id: &str,
        size: u64,
    ) -> Result<Vec<CompletedPart>> {
        let mut file = fs_err::File::open(path).map_err(io_err(path))?;
        let mut parts = Vec::new();
        let mut sent = 0u64;
        let tty = std::io::stderr().is_terminal();
        let mut last_quarter = 0;
        for number in 1.. {
            let mut buf = Vec::with_capacity(PART_SIZE);
            (&mut file)
                .take(PART_SIZE as u64)
                .read_to_end(&mut buf)
                .map_err(io_err(path))?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len() as u64;
            let part = self
                .client
                .upload_part()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| S3Error::request("upload", uri, reason(e)))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
            sent += n;
            let pct = sent * 100 / size.max(1);
            if tty {
                eprint!(
                    "\rupload {uri}: {pct:>3}% ({} / {} MB)",
                    sent >> 20,
                    size >> 20
                );
                if sent >= size {
                    eprintln!();
                }
            } else if pct / 25 > last_quarter {
                last_quarter = pct / 25;
                tracing::info!("upload {uri}: {pct}% ({} / {} MB)", sent >> 20, size >> 20);
            }
        }
        Ok(parts)
    }
}

/// `upload-data`: puts `from/train_data.csv` under `dest/train/` and
/// `from/test_data.csv` (when present) under `dest/test/`, as they are:
/// the lab's files or any columns `prepare` copied (the files are not
/// read, only sent). Returns the URIs.
pub fn upload_data(from: &Path, dest: &S3Uri) -> Result<Vec<S3Uri>> {
    let train = from.join("train_data.csv");
    if !train.is_file() {
        return Err(S3Error::Io {
            path: train,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no train_data.csv here (make it with `ccfraud prepare`)",
            ),
        });
    }
    let s3 = S3::connect()?;
    s3.check_bucket(dest)?;
    let mut done = Vec::new();
    for (file, channel) in [("train_data.csv", "train"), ("test_data.csv", "test")] {
        let path = from.join(file);
        if !path.is_file() {
            continue;
        }
        let uri = dest.join(&format!("{channel}/{file}"));
        s3.upload_file(&path, &uri)?;
        tracing::info!("uploaded {} to {uri}", path.display());
        done.push(uri);
    }
    Ok(done)
}

/// Writes a file under a temporary name, then renames it into place.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = crate::partial_path(dest);
    let result = fs_err::write(&tmp, bytes).and_then(|_| fs_err::rename(&tmp, dest));
    if result.is_err() {
        let _ = fs_err::remove_file(&tmp);
    }
    result.map_err(io_err(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = S3Uri::parse("s3://bucket/data/prefix/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.key.as_str()),
            ("bucket", "data/prefix/")
        );
        assert_eq!(
            u.join("train/x.csv").to_string(),
            "s3://bucket/data/prefix/train/x.csv"
        );
        assert_eq!(S3Uri::parse("s3://b").unwrap().join("k").key, "k");
        assert_eq!(S3Uri::parse("s3://b/p").unwrap().join("k").key, "p/k");
        for bad in ["http://x/y", "s3://", "s3:///key", "bucket/key"] {
            assert!(S3Uri::parse(bad).is_err(), "{bad}");
        }
    }
}
