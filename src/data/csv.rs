//! Fast readers for the two CSV layouts users have:
//!
//! * the lab's `train_data.csv` / `test_data.csv`: no header, 29 features
//!   (`V1`..`V28`, standardized `Amount`) then the label;
//! * Kaggle's `creditcard.csv`: a header (`"Time","V1",…,"Amount","Class"`),
//!   `Time` dropped, the raw `Amount` standardized the lab's way.
//!
//! Files may be gzip-compressed (`.csv.gz`, detected by magic bytes). Parsing is
//! byte-level over all cores: the body is cut into chunks at line boundaries,
//! each chunk is parsed by its own thread, and results are joined in order.
//! A bad row is an error naming file, line and column.

use super::{standardize_amount, DataError, Dataset, Result, FEATURE_NAMES, N_FEATURES};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What one input column becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// Model feature at this index, used as is.
    Feature(usize),
    /// Kaggle's raw `Amount`, standardized into feature 28.
    RawAmount,
    /// The 0/1 label.
    Label,
    /// A column we read past (`Time`).
    Skip,
}

/// The column plan of a file, from its header or the lab's fixed layout.
#[derive(Debug, Clone)]
struct Layout {
    roles: Vec<Role>,
    /// Lines consumed by the header (0 or 1).
    header_lines: usize,
}

impl Layout {
    fn lab() -> Layout {
        let mut roles: Vec<Role> = (0..N_FEATURES).map(Role::Feature).collect();
        roles.push(Role::Label);
        Layout {
            roles,
            header_lines: 0,
        }
    }

    /// Builds the plan from a header line, naming any column it cannot place.
    fn from_header(path: &Path, header: &[u8]) -> Result<Layout> {
        let text = std::str::from_utf8(header).map_err(|_| DataError::Row {
            path: path.to_owned(),
            line: 1,
            column: 1,
            reason: "header is not valid UTF-8".into(),
        })?;
        let mut roles = Vec::new();
        let mut seen = [false; N_FEATURES + 1];
        for (i, raw) in text.split(',').enumerate() {
            let name = raw.trim().trim_matches('"').trim();
            let role = match name {
                "Time" => Role::Skip,
                "Amount" => Role::RawAmount,
                "Amount_std" => Role::Feature(N_FEATURES - 1),
                "Class" => Role::Label,
                _ => match FEATURE_NAMES[..N_FEATURES - 1].iter().position(|n| *n == name) {
                    Some(j) => Role::Feature(j),
                    None => {
                        return Err(DataError::Row {
                            path: path.to_owned(),
                            line: 1,
                            column: i + 1,
                            reason: format!(
                                "unknown column '{name}' (expected Time, V1..V28, Amount or Amount_std, Class)"
                            ),
                        })
                    }
                },
            };
            let slot = match role {
                Role::Feature(j) => Some(j),
                Role::RawAmount => Some(N_FEATURES - 1),
                Role::Label => Some(N_FEATURES),
                Role::Skip => None,
            };
            if let Some(s) = slot {
                if seen[s] {
                    return Err(DataError::Row {
                        path: path.to_owned(),
                        line: 1,
                        column: i + 1,
                        reason: format!("column '{name}' appears twice"),
                    });
                }
                seen[s] = true;
            }
            roles.push(role);
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            let name = if missing == N_FEATURES {
                "Class"
            } else {
                FEATURE_NAMES[missing]
            };
            return Err(DataError::File {
                path: path.to_owned(),
                reason: format!("header has no '{name}' column"),
            });
        }
        Ok(Layout {
            roles,
            header_lines: 1,
        })
    }
}

/// Reads one file (`.csv` or gzip-compressed) into a data set.
pub fn read_file(path: &Path) -> Result<Dataset> {
    let t = std::time::Instant::now();
    let bytes = read_bytes(path)?;
    let read = t.elapsed();
    let d = parse(path, &bytes)?;
    tracing::debug!(
        "{}: {} bytes read in {:.3} s, parsed in {:.3} s",
        path.display(),
        bytes.len(),
        read.as_secs_f64(),
        (t.elapsed() - read).as_secs_f64()
    );
    Ok(d)
}

/// Reads a file's bytes, gunzipping when it starts with the gzip magic.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let raw = read_parallel(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::File {
                path: path.to_owned(),
                reason: format!("corrupt gzip data: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads a whole file; large files are read by all cores at once, each
/// into its own slice of one zero-initialised (lazily mapped) buffer.
fn read_parallel(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
    let threads = crate::cores();
    if len < 8 << 20 || threads == 1 {
        let mut buf = Vec::with_capacity(len);
        std::io::Read::read_to_end(&mut &file, &mut buf)?;
        return Ok(buf);
    }
    let mut buf = vec![0u8; len];
    let per = len.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = buf
            .chunks_mut(per)
            .enumerate()
            .map(|(k, part)| {
                let file = &file;
                s.spawn(move || file.read_exact_at(part, (k * per) as u64))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })?;
    Ok(buf)
}

/// fs_err already names the path; we add it ourselves, so keep only the cause.
fn strip_path(e: &std::io::Error) -> String {
    match std::error::Error::source(e) {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// Parses CSV bytes; `path` is only used in error messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Dataset> {
    let (layout, body_start) = detect(path, bytes)?;
    let body = &bytes[body_start..];
    let threads = crate::cores();
    let chunks = split_chunks(body, threads, 1 << 20);
    let results: Vec<std::result::Result<Dataset, RowError>> = if chunks.len() == 1 {
        vec![parse_chunk(&layout, chunks[0])]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|c| {
                    let layout = &layout;
                    s.spawn(move || parse_chunk(layout, c))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut out = Dataset::default();
    for (k, result) in results.into_iter().enumerate() {
        match result {
            Ok(d) if out.is_empty() => out = d,
            Ok(d) => out.extend(d),
            Err(e) => {
                // Lines are counted only now, on the way to an error.
                let before: usize = chunks[..k].iter().map(|c| count_lines(c)).sum();
                return Err(DataError::Row {
                    path: path.to_owned(),
                    line: layout.header_lines + before + e.line,
                    column: e.column,
                    reason: e.reason,
                });
            }
        }
    }
    Ok(out)
}

fn count_lines(chunk: &[u8]) -> usize {
    chunk.iter().filter(|&&b| b == b'\n').count()
}

/// Finds the layout and where data rows start.
fn detect(path: &Path, bytes: &[u8]) -> Result<(Layout, usize)> {
    let first_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let first = trim_cr(&bytes[..first_end]);
    // A header starts with a column name we know; anything else is data
    // (so a stray word in a lab file is reported as "not a number").
    let first_field = first.split(|&b| b == b',').next().unwrap_or(&[]);
    let name = String::from_utf8_lossy(first_field);
    let name = name.trim().trim_matches('"').trim();
    let is_header = matches!(name, "Time" | "Amount" | "Amount_std" | "Class")
        || FEATURE_NAMES[..N_FEATURES - 1].contains(&name);
    if is_header {
        let layout = Layout::from_header(path, first)?;
        Ok((layout, (first_end + 1).min(bytes.len())))
    } else {
        Ok((Layout::lab(), 0))
    }
}

/// Cuts `body` into at most `n` pieces of at least `min` bytes, each ending
/// just after a newline (the last may end without one).
pub(crate) fn split_chunks(body: &[u8], n: usize, min: usize) -> Vec<&[u8]> {
    let n = n.max(1).min(body.len() / min.max(1)).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..n {
        let target = (body.len() * k / n).max(start);
        match body[target..].iter().position(|&b| b == b'\n') {
            Some(p) => {
                let end = target + p + 1;
                out.push(&body[start..end]);
                start = end;
            }
            None => break,
        }
    }
    out.push(&body[start..]);
    out
}

#[inline]
fn trim_cr(line: &[u8]) -> &[u8] {
    match line.last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    }
}

/// A row error inside a chunk; `line` is 1-based within the chunk.
#[derive(Debug)]
struct RowError {
    line: usize,
    column: usize,
    reason: String,
}

fn parse_chunk(layout: &Layout, chunk: &[u8]) -> std::result::Result<Dataset, RowError> {
    // Estimate rows from the chunk size to allocate once (~530 bytes a row).
    let est = chunk.len() / 400 + 1;
    let mut out = Dataset {
        features: Vec::with_capacity(est * N_FEATURES),
        labels: Vec::with_capacity(est),
    };
    let mut row = [0f32; N_FEATURES];
    let mut pos = 0;
    let mut line_no = 0;
    while pos < chunk.len() {
        line_no += 1;
        // One pass over well-formed rows; anything unusual (blank lines,
        // spaces, errors) is handled by the careful line parser below.
        if let Some((label, next)) = fast_row(layout, chunk, pos, &mut row) {
            out.features.extend_from_slice(&row);
            out.labels.push(label);
            pos = next;
            continue;
        }
        let end = chunk[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(chunk.len(), |p| pos + p);
        let line = trim_cr(&chunk[pos..end]);
        pos = end + 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let label = parse_row(layout, line, &mut row).map_err(|(column, reason)| RowError {
            line: line_no,
            column,
            reason,
        })?;
        out.features.extend_from_slice(&row);
        out.labels.push(label);
    }
    Ok(out)
}

/// Parses a plain row (numbers, optionally double-quoted, comma-separated,
/// ending in `\n`, `\r\n` or the end) starting at `pos`; returns the label
/// and where the next line starts, or None to use the careful parser.
#[inline]
fn fast_row(
    layout: &Layout,
    chunk: &[u8],
    mut pos: usize,
    row: &mut [f32; N_FEATURES],
) -> Option<(u8, usize)> {
    let mut label = None;
    let last = layout.roles.len() - 1;
    for (col, role) in layout.roles.iter().enumerate() {
        let v = if *role == Role::Skip {
            let rest = &chunk[pos..];
            let n = rest
                .iter()
                .position(|&b| b == b',' || b == b'\n')
                .unwrap_or(rest.len());
            pos += n;
            0.0
        } else if chunk.get(pos) == Some(&b'"') {
            let (v, n) = decimal_prefix(&chunk[pos + 1..])?;
            if chunk.get(pos + 1 + n) != Some(&b'"') {
                return None;
            }
            pos += n + 2;
            v
        } else {
            let (v, n) = decimal_prefix(&chunk[pos..])?;
            pos += n;
            v
        };
        match chunk.get(pos) {
            Some(b',') if col < last => pos += 1,
            Some(b'\n') | None if col == last => {}
            Some(b'\r') if col == last && chunk.get(pos + 1).is_none_or(|&b| b == b'\n') => {
                pos += 1
            }
            _ => return None,
        }
        match *role {
            Role::Feature(j) => row[j] = v as f32,
            Role::RawAmount => row[N_FEATURES - 1] = standardize_amount(v) as f32,
            Role::Label if v == 0.0 => label = Some(0),
            Role::Label if v == 1.0 => label = Some(1),
            Role::Label => return None,
            Role::Skip => {}
        }
    }
    Some((label?, pos + 1))
}

/// Comma-separated fields of one line, without allocating.
struct Fields<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos > self.line.len() {
            return None;
        }
        let rest = &self.line[self.pos..];
        let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
        self.pos += end + 1;
        Some(&rest[..end])
    }
}

/// Parses one data line into `row`, returning the label, or (column, reason).
fn parse_row(
    layout: &Layout,
    line: &[u8],
    row: &mut [f32; N_FEATURES],
) -> std::result::Result<u8, (usize, String)> {
    let mut label = None;
    let mut fields = Fields { line, pos: 0 };
    for (col, role) in layout.roles.iter().enumerate() {
        let field = fields.next().ok_or_else(|| {
            (
                col + 1,
                format!("expected {} columns, found {}", layout.roles.len(), col),
            )
        })?;
        if *role == Role::Skip {
            continue;
        }
        // Fast path: a plain number filling the field; anything else
        // (quotes, spaces, errors) goes through the careful parser.
        let v = match decimal(field) {
            Some(v) => v,
            None => parse_number(field).map_err(|r| (col + 1, r))?,
        };
        match *role {
            Role::Feature(j) => row[j] = v as f32,
            Role::RawAmount => row[N_FEATURES - 1] = standardize_amount(v) as f32,
            Role::Label => {
                label = Some(if v == 0.0 {
                    0
                } else if v == 1.0 {
                    1
                } else {
                    return Err((
                        col + 1,
                        format!("label must be 0 or 1, found {}", show(field)),
                    ));
                })
            }
            Role::Skip => {}
        }
    }
    let extra = fields.count();
    if extra > 0 {
        return Err((
            layout.roles.len() + 1,
            format!(
                "expected {} columns, found {}",
                layout.roles.len(),
                layout.roles.len() + extra
            ),
        ));
    }
    label.ok_or_else(|| (layout.roles.len(), "no label column".into()))
}

/// Powers of ten exactly representable as f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path for plain decimals (`-12.345`, `1.5e-3`): when the
/// digits fit in 2^53 and the power of ten is at most 22, one IEEE
/// multiplication or division gives the correctly rounded value. Returns
/// None for anything else (quotes, spaces, long mantissas, junk), which then
/// takes the general parser.
#[inline]
pub(crate) fn decimal(s: &[u8]) -> Option<f64> {
    decimal_prefix(s)
        .filter(|&(_, n)| n == s.len())
        .map(|(v, _)| v)
}

/// [`decimal`] on the start of `s`: the value and the bytes it used.
#[inline]
fn decimal_prefix(s: &[u8]) -> Option<(f64, usize)> {
    let (neg, mut i) = match s.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mant: u64 = 0;
    let mut digits = 0u32;
    let mut frac = 0i32;
    let start = i;
    while let Some(&c) = s.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        mant = mant * 10 + u64::from(c - b'0');
        digits += u32::from(mant != 0);
        i += 1;
        if digits > 18 {
            return None;
        }
    }
    let int_digits = i - start;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            mant = mant * 10 + u64::from(c - b'0');
            digits += u32::from(mant != 0);
            frac += 1;
            frac_digits += 1;
            i += 1;
            if digits > 18 {
                return None;
            }
        }
    }
    if int_digits + frac_digits == 0 || digits > 18 {
        return None;
    }
    let mut exp = 0i32;
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        let eneg = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let estart = i;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() || i - estart > 4 {
                break;
            }
            exp = exp * 10 + i32::from(c - b'0');
            i += 1;
        }
        if i == estart || i - estart > 4 {
            return None;
        }
        if eneg {
            exp = -exp;
        }
    }
    if mant > 1 << 53 {
        return None;
    }
    let e10 = exp - frac;
    let v = if mant == 0 {
        0.0
    } else if (0..=22).contains(&e10) {
        mant as f64 * POW10[e10 as usize]
    } else if (-22..0).contains(&e10) {
        mant as f64 / POW10[(-e10) as usize]
    } else {
        return None;
    };
    Some((if neg { -v } else { v }, i))
}

/// Parses a CSV field as a finite number (surrounding spaces and one level of
/// double quotes allowed).
#[inline]
pub(crate) fn parse_number(field: &[u8]) -> std::result::Result<f64, String> {
    let f = field.trim_ascii();
    let f = match f {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => f,
    };
    if let Some(v) = decimal(f) {
        return Ok(v);
    }
    match fast_float2::parse::<f64, _>(f) {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("value {} is not finite", show(field))),
        Err(_) if f.is_empty() => Err("empty field".into()),
        Err(_) => Err(format!("not a number: {}", show(field))),
    }
}

/// A field for an error message, cut to a sane length.
fn show(field: &[u8]) -> String {
    let s = String::from_utf8_lossy(field);
    let s = s.trim();
    if s.chars().count() > 40 {
        format!("'{}…'", s.chars().take(40).collect::<String>())
    } else {
        format!("'{s}'")
    }
}

/// Lists the data files of a channel folder: every regular file below it,
/// nested folders included, hidden files skipped, sorted by path.
pub fn channel_files(channel: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = fs_err::read_dir(&d).map_err(|e| DataError::Channel {
            channel: channel.to_owned(),
            path: d.clone(),
            reason: strip_path(&e),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::Channel {
                channel: channel.to_owned(),
                path: d.clone(),
                reason: e.to_string(),
            })?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every file of a channel into one data set. An empty channel, or one
/// without a single fraud, is an error.
pub fn read_channel(channel: &str, dir: &Path) -> Result<Dataset> {
    let files = channel_files(channel, dir)?;
    if files.is_empty() {
        return Err(DataError::Channel {
            channel: channel.to_owned(),
            path: dir.to_owned(),
            reason: "no data files".into(),
        });
    }
    let mut all = Dataset::default();
    for f in &files {
        let d = read_file(f)?;
        if all.is_empty() {
            all = d;
        } else {
            all.extend(d);
        }
    }
    if all.is_empty() {
        return Err(DataError::Channel {
            channel: channel.to_owned(),
            path: dir.to_owned(),
            reason: format!("{} file(s) but no transactions", files.len()),
        });
    }
    if all.n_fraud() == 0 {
        return Err(DataError::Channel {
            channel: channel.to_owned(),
            path: dir.to_owned(),
            reason: format!(
                "{} transactions but no fraud (Class=1) among them: nothing to learn or evaluate",
                all.len()
            ),
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_line(label: &str) -> String {
        let mut v: Vec<String> = (0..N_FEATURES).map(|i| format!("{}.5", i)).collect();
        v.push(label.into());
        v.join(",")
    }

    fn err(bytes: &str) -> (usize, usize, String) {
        match parse(Path::new("f.csv"), bytes.as_bytes()) {
            Err(DataError::Row {
                line,
                column,
                reason,
                ..
            }) => (line, column, reason),
            other => panic!("expected a row error, got {other:?}"),
        }
    }

    #[test]
    fn reads_lab_format() {
        let text = format!("{}\n{}\r\n\n", lab_line("0"), lab_line("1"));
        let d = parse(Path::new("f.csv"), text.as_bytes()).unwrap();
        assert_eq!(d.labels, vec![0, 1]);
        assert_eq!(d.row(1)[3], 3.5);
        assert_eq!(d.row(1)[28], 28.5);
    }

    #[test]
    fn reads_kaggle_format_and_standardizes_amount() {
        let mut header = vec!["\"Time\"".to_string()];
        header.extend((1..=28).map(|i| format!("\"V{i}\"")));
        header.push("\"Amount\"".into());
        header.push("\"Class\"".into());
        let mut row = vec!["0".to_string()];
        row.extend((1..=28).map(|i| format!("{i}")));
        row.push("1.00".into());
        row.push("\"1\"".into());
        let text = format!("{}\n{}\n", header.join(","), row.join(","));
        let d = parse(Path::new("k.csv"), text.as_bytes()).unwrap();
        assert_eq!(d.labels, vec![1]);
        assert_eq!(d.row(0)[0], 1.0);
        assert!((d.row(0)[28] as f64 - -0.349_231_306_772_885_6).abs() < 1e-6);
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let good = lab_line("0");
        let text = format!("{good}\n{}\n", good.replacen("3.5", "abc", 1));
        let (line, col, reason) = err(&text);
        assert_eq!((line, col), (2, 4));
        assert!(reason.contains("not a number: 'abc'"), "{reason}");

        let (line, col, reason) = err(&format!("{good}\n{good},7\n"));
        assert_eq!((line, col), (2, 31));
        assert!(reason.contains("expected 30 columns, found 31"), "{reason}");

        let short = good.rsplitn(3, ',').nth(2).unwrap().to_string();
        let (line, _, reason) = err(&format!("{short}\n"));
        assert_eq!(line, 1);
        assert!(reason.contains("expected 30 columns, found 28"), "{reason}");

        for bad in ["NaN", "inf", "-inf"] {
            let (_, col, reason) = err(&good.replacen("0.5", bad, 1));
            assert_eq!(col, 1);
            assert!(reason.contains("not finite"), "{reason}");
        }

        let (_, col, reason) = err(&lab_line("2"));
        assert_eq!(col, 30);
        assert!(reason.contains("label must be 0 or 1"), "{reason}");

        let (_, col, reason) = err(&good.replacen("1.5", "", 1));
        assert_eq!(col, 2);
        assert_eq!(reason, "empty field");
    }

    #[test]
    fn line_numbers_survive_parallel_chunks() {
        let good = lab_line("0");
        let mut text = String::new();
        for _ in 0..20000 {
            text.push_str(&good);
            text.push('\n');
        }
        text.push_str(&good.replacen("5.5", "x", 1));
        text.push('\n');
        assert!(text.len() > 2 << 20, "must span several chunks");
        let (line, col, _) = err(&text);
        assert_eq!((line, col), (20001, 6));
    }

    #[test]
    fn header_errors_name_the_column() {
        let (line, col, reason) = err("\"Time\",\"V1\",\"Foo\"\n");
        let (l2, c2, r2) = err("foo,1\n");
        assert_eq!((l2, c2), (1, 1));
        assert!(r2.contains("not a number: 'foo'"), "{r2}");
        assert_eq!((line, col), (1, 3));
        assert!(reason.contains("unknown column 'Foo'"));
        match parse(Path::new("h.csv"), b"V1,V2,Class\n1,2,0\n") {
            Err(DataError::File { reason, .. }) => assert!(reason.contains("'V3'"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_pass_rows_equal_careful_rows() {
        // plain rows take the one-pass parser; spaced and quoted ones the
        // careful one: the values must be identical.
        let plain = format!("{}\n{}\r\n", lab_line("0"), lab_line("1"));
        let careful: String = plain
            .lines()
            .map(|l| {
                l.split(',')
                    .map(|f| format!(" \"{f}\" "))
                    .collect::<Vec<_>>()
                    .join(",")
                    + "\n"
            })
            .collect();
        let a = parse(Path::new("a.csv"), plain.as_bytes()).unwrap();
        let b = parse(Path::new("b.csv"), careful.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn decimal_fast_path_examples() {
        for (text, want) in [
            ("-1.3598071336738", -1.3598071336738),
            ("0", 0.0),
            ("-0.0", -0.0),
            ("149.62", 149.62),
            ("1e-05", 1e-05),
            ("2.5E+3", 2500.0),
            ("+7", 7.0),
            (".5", 0.5),
            ("5.", 5.0),
        ] {
            let got = decimal(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), Some(f64::to_bits(want)), "{text}");
        }
        for text in [
            "",
            "-",
            ".",
            "1e",
            "1e+",
            "abc",
            "1.2.3",
            "\"1\"",
            " 1",
            "NaN",
            "inf",
            "1e99999",
            "12345678901234567890",
        ] {
            assert_eq!(decimal(text.as_bytes()), None, "{text}");
        }
    }

    proptest::proptest! {
        /// The fast path agrees bit for bit with the standard library.
        #[test]
        fn decimal_agrees_with_std(
            neg in proptest::bool::ANY,
            int in 0u64..10_000_000_000,
            frac in proptest::option::of(0u64..10_000_000_000),
            exp in proptest::option::of(-30i32..30),
        ) {
            let mut s = String::new();
            if neg { s.push('-'); }
            s.push_str(&int.to_string());
            if let Some(f) = frac { s.push('.'); s.push_str(&f.to_string()); }
            if let Some(e) = exp { s.push_str(&format!("e{e}")); }
            let want: f64 = s.parse().unwrap();
            if let Some(got) = decimal(s.as_bytes()) {
                proptest::prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", s);
            }
            proptest::prop_assert_eq!(parse_number(s.as_bytes()).unwrap().to_bits(), want.to_bits());
        }
    }

    #[test]
    fn chunks_cover_body_at_line_ends() {
        let body = b"aa\nbbb\ncccc\nd\n";
        for n in 1..6 {
            let chunks = split_chunks(body, n, 1);
            assert_eq!(chunks.concat(), body.to_vec());
            for c in &chunks[..chunks.len() - 1] {
                assert_eq!(c.last(), Some(&b'\n'));
            }
        }
    }

    #[test]
    fn channel_errors() {
        let dir = tempfile::tempdir().unwrap();
        match read_channel("train", dir.path()) {
            Err(DataError::Channel { reason, .. }) => assert_eq!(reason, "no data files"),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("a.csv"), format!("{}\n", lab_line("0"))).unwrap();
        match read_channel("train", dir.path()) {
            Err(DataError::Channel { reason, .. }) => assert!(reason.contains("no fraud")),
            other => panic!("{other:?}"),
        }
        // nested, gzip-compressed, hidden files skipped
        std::fs::create_dir(dir.path().join("part")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, format!("{}\n", lab_line("1")).as_bytes()).unwrap();
        std::fs::write(dir.path().join("part/b.csv.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.path().join(".hidden"), "garbage").unwrap();
        let d = read_channel("train", dir.path()).unwrap();
        assert_eq!(d.labels, vec![0, 1]);
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv.gz");
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        assert!(matches!(read_file(&p), Err(DataError::File { .. })));
    }
}
