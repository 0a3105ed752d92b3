//! `ccfraud prepare`: Kaggle's `creditcard.csv` → the lab's `train_data.csv`
//! and `test_data.csv` (no header; `V1`..`V28`, standardized `Amount`, `Class`)
//! with the standard time-ordered split. `V` values are copied byte for byte,
//! `Amount` is standardized with the lab's constants and written in shortest
//! round-trip form, so output is deterministic and byte-identical across runs.

use super::csv::{parse_number, read_bytes};
use super::split::time_split_point;
use super::{standardize_amount, DataError, Result, FEATURE_NAMES, N_FEATURES};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `prepare` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub train_path: PathBuf,
    pub test_path: PathBuf,
    pub train_rows: usize,
    pub train_frauds: usize,
    pub test_rows: usize,
    pub test_frauds: usize,
}

/// Converts a Kaggle-format file into the lab's two files inside `out_dir`.
/// Files appear atomically (written under a temporary name, then renamed).
pub fn prepare(input: &Path, out_dir: &Path) -> Result<Prepared> {
    let bytes = read_bytes(input)?;
    let mut lines = bytes.split(|&b| b == b'\n').enumerate();
    let (_, header) = lines.next().ok_or_else(|| DataError::File {
        path: input.to_owned(),
        reason: "empty file".into(),
    })?;
    let cols = header_columns(input, trim_cr(header))?;
    let n_cols = header.split(|&b| b == b',').count();

    // Each output row, as text, with its label.
    let mut rows: Vec<(Vec<u8>, u8)> = Vec::with_capacity(bytes.len() / 500);
    for (i, line) in lines {
        let line = trim_cr(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let row_err = |column: usize, reason: String| DataError::Row {
            path: input.to_owned(),
            line: i + 1,
            column,
            reason,
        };
        let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        if fields.len() != n_cols {
            return Err(row_err(
                fields.len().min(n_cols) + 1,
                format!("expected {n_cols} columns, found {}", fields.len()),
            ));
        }
        let mut out = Vec::with_capacity(line.len());
        for &c in cols.iter().take(N_FEATURES - 1) {
            parse_number(fields[c]).map_err(|r| row_err(c + 1, r))?;
            out.extend_from_slice(unquote(fields[c]));
            out.push(b',');
        }
        let amount_col = cols[N_FEATURES - 1];
        let amount = parse_number(fields[amount_col]).map_err(|r| row_err(amount_col + 1, r))?;
        write!(out, "{},", standardize_amount(amount)).map_err(|e| DataError::File {
            path: input.to_owned(),
            reason: e.to_string(),
        })?;
        let class_col = cols[N_FEATURES];
        let label = match parse_number(fields[class_col]).map_err(|r| row_err(class_col + 1, r))? {
            0.0 => 0u8,
            1.0 => 1u8,
            _ => {
                return Err(row_err(
                    class_col + 1,
                    format!(
                        "label must be 0 or 1, found '{}'",
                        String::from_utf8_lossy(fields[class_col])
                    ),
                ))
            }
        };
        out.push(b'0' + label);
        out.push(b'\n');
        rows.push((out, label));
    }
    if rows.is_empty() {
        return Err(DataError::File {
            path: input.to_owned(),
            reason: "no data rows after the header".into(),
        });
    }
    let split = time_split_point(rows.len());
    let io = |path: &Path, e: std::io::Error| DataError::Io {
        path: path.to_owned(),
        source: e,
    };
    fs_err::create_dir_all(out_dir).map_err(|e| io(out_dir, e))?;
    let train_path = out_dir.join("train_data.csv");
    let test_path = out_dir.join("test_data.csv");
    write_atomic(&train_path, &rows[..split]).map_err(|e| io(&train_path, e))?;
    write_atomic(&test_path, &rows[split..]).map_err(|e| io(&test_path, e))?;
    let frauds = |r: &[(Vec<u8>, u8)]| r.iter().filter(|(_, y)| *y == 1).count();
    Ok(Prepared {
        train_rows: split,
        train_frauds: frauds(&rows[..split]),
        test_rows: rows.len() - split,
        test_frauds: frauds(&rows[split..]),
        train_path,
        test_path,
    })
}

fn write_atomic(path: &Path, rows: &[(Vec<u8>, u8)]) -> std::io::Result<()> {
    let tmp = crate::partial_path(path);
    let result = (|| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, fs_err::File::create(&tmp)?);
        for (r, _) in rows {
            w.write_all(r)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs_err::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn unquote(f: &[u8]) -> &[u8] {
    let f = f.trim_ascii();
    match f {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => f,
    }
}

/// Input column index of `V1`..`V28`, `Amount`, `Class` (in that order).
fn header_columns(path: &Path, header: &[u8]) -> Result<[usize; N_FEATURES + 1]> {
    let names: Vec<String> = String::from_utf8_lossy(header)
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim().to_string())
        .collect();
    let mut cols = [0usize; N_FEATURES + 1];
    let wanted = FEATURE_NAMES[..N_FEATURES - 1]
        .iter()
        .copied()
        .chain(["Amount", "Class"]);
    for (k, name) in wanted.enumerate() {
        cols[k] = names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| DataError::File {
                path: path.to_owned(),
                reason: format!(
                    "not the Kaggle format: the header has no '{name}' column (found: {})",
                    names.join(",")
                ),
            })?;
    }
    Ok(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kaggle(rows: usize) -> String {
        let mut s = String::from("\"Time\"");
        for i in 1..=28 {
            s.push_str(&format!(",\"V{i}\""));
        }
        s.push_str(",\"Amount\",\"Class\"\n");
        for r in 0..rows {
            s.push_str(&format!("{r}"));
            for i in 1..=28 {
                s.push_str(&format!(",{}.25", i as i64 - 14));
            }
            s.push_str(&format!(",1.00,\"{}\"\n", u8::from(r % 5 == 0)));
        }
        s
    }

    #[test]
    fn prepares_lab_files_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("creditcard.csv");
        std::fs::write(&input, kaggle(10)).unwrap();
        let p = prepare(&input, &dir.path().join("out")).unwrap();
        assert_eq!((p.train_rows, p.test_rows), (8, 2));
        assert_eq!((p.train_frauds, p.test_frauds), (2, 0));
        let train = std::fs::read_to_string(&p.train_path).unwrap();
        let first = train.lines().next().unwrap();
        assert!(first.starts_with("-13.25,-12.25,"), "{first}");
        assert!(first.ends_with(",-0.3492313067728856,1"), "{first}");
        // the output reads back through the lab reader
        let d = super::super::csv::read_file(&p.train_path).unwrap();
        assert_eq!(d.len(), 8);
        let again = prepare(&input, &dir.path().join("out2")).unwrap();
        assert_eq!(std::fs::read(&again.train_path).unwrap(), train.as_bytes());
    }

    #[test]
    fn refuses_other_formats_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("x.csv");
        std::fs::write(&input, "a,b\n1,2\n").unwrap();
        let e = prepare(&input, dir.path()).unwrap_err().to_string();
        assert!(e.contains("no 'V1' column"), "{e}");
        let bad = kaggle(3).replacen(",1.00,", ",oops,", 1);
        std::fs::write(&input, bad).unwrap();
        let e = prepare(&input, dir.path()).unwrap_err().to_string();
        assert!(e.contains("x.csv:2:30: not a number: 'oops'"), "{e}");
        assert!(!dir.path().join("train_data.csv").exists());
    }
}
