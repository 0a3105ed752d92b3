//! `ccfraud prepare`: Kaggle's `creditcard.csv` → the lab's `train_data.csv`
//! and `test_data.csv` (no header; `V1`..`V28`, standardized `Amount`, `Class`)
//! with the standard time-ordered split. `V` values are copied byte for byte,
//! `Amount` is standardized with the lab's constants and written in shortest
//! round-trip form, so output is deterministic and byte-identical across runs.

use super::csv::{
    column_count, parse_number, read_parallel, records, text_blocks, Layout, Problem, Role, Shown,
    GZ_BLOCK,
};
use super::split::time_split_point;
use super::{standardize_amount, DataError, Result};
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
    prepare_in_blocks(input, out_dir, GZ_BLOCK)
}

/// [`prepare`], a `.csv.gz` decompressed `block` bytes at a time.
fn prepare_in_blocks(input: &Path, out_dir: &Path, block: usize) -> Result<Prepared> {
    let raw = read_parallel(input)?;
    // The first line is the header; its columns are mapped by the one
    // layout rule every reader uses.
    let mut layout = None;
    // Each output row, as text, with its label.
    let mut rows: Vec<(Vec<u8>, u8)> = Vec::with_capacity(raw.len() / 500);
    // A `.csv.gz` arrives a bounded block of lines at a time.
    text_blocks(input, &raw, block, |text, lines_before| {
        records(text, |rec| match &layout {
            None => {
                layout = Some(Layout::from_header(rec)?);
                Ok(())
            }
            Some(layout) => lab_row(layout, rec).map(|row| rows.push(row)),
        })
        .map_err(|e| DataError::Row {
            path: input.to_owned(),
            line: lines_before + e.line,
            column: e.column,
            problem: e.problem,
        })
    })?;
    if rows.is_empty() {
        return Err(DataError::NoRows {
            path: input.to_owned(),
        });
    }
    let split = time_split_point(rows.len());
    let io = |path: &Path, source: std::io::Error| DataError::Io {
        path: path.to_owned(),
        source,
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

/// One input record → one lab-format line: features in model order (copied
/// byte for byte, `Amount` standardized in shortest round-trip form), then
/// the label.
fn lab_row(
    layout: &Layout,
    rec: &csv::ByteRecord,
) -> std::result::Result<(Vec<u8>, u8), (usize, Problem)> {
    let roles = layout.roles();
    let mut fields: [Option<std::borrow::Cow<'_, [u8]>>; super::N_FEATURES] = Default::default();
    let mut label = None;
    for (col, (role, field)) in roles.iter().zip(rec.iter()).enumerate() {
        if *role == Role::Skip {
            continue;
        }
        let v = parse_number(field).map_err(|p| (col + 1, p))?;
        match *role {
            Role::Feature(j) => fields[j] = Some(unquote(field).into()),
            Role::RawAmount => {
                let std = standardize_amount(v).to_string().into_bytes();
                fields[super::N_FEATURES - 1] = Some(std.into());
            }
            Role::Label if v == 0.0 || v == 1.0 => label = Some(u8::from(v == 1.0)),
            Role::Label => return Err((col + 1, Problem::Label(Shown::new(field)))),
            // Kaggle's header has no categorical column.
            Role::Skip | Role::Category(_) => {}
        }
    }
    column_count(roles.len(), rec.len())?;
    // from_header guarantees every feature and the label appear once.
    let label = label.ok_or((roles.len(), Problem::MissingColumn("Class".into())))?;
    let mut out = Vec::with_capacity(rec.as_slice().len() + 32);
    for f in fields.iter().flatten() {
        out.extend_from_slice(f);
        out.push(b',');
    }
    out.push(b'0' + label);
    out.push(b'\n');
    Ok((out, label))
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
        let _ = fs_err::remove_file(&tmp);
    }
    result
}

fn unquote(f: &[u8]) -> &[u8] {
    let f = f.trim_ascii();
    match f {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use super::super::csv::tests::gzip;
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
        let d =
            super::super::csv::read_file(&p.train_path, &super::super::csv::tests::lab()).unwrap();
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
        assert!(e.contains("x.csv:1:1: unknown column 'a'"), "{e}");
        std::fs::write(&input, "V1,Class\n").unwrap();
        let e = prepare(&input, dir.path()).unwrap_err().to_string();
        assert!(e.contains("header has no 'V2' column"), "{e}");
        let bad = kaggle(3).replacen(",1.00,", ",oops,", 1);
        std::fs::write(&input, bad).unwrap();
        let e = prepare(&input, dir.path()).unwrap_err().to_string();
        assert!(e.contains("x.csv:2:30: not a number: 'oops'"), "{e}");
        assert!(!dir.path().join("train_data.csv").exists());
    }

    /// A `.csv.gz` gives the same files as the plain CSV, errors name the
    /// file's own line, and a bomb is refused after one block (issue 10).
    #[test]
    fn gzip_input_is_read_a_block_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, packed) = (dir.path().join("a.csv"), dir.path().join("a.csv.gz"));
        std::fs::write(&plain, kaggle(10)).unwrap();
        std::fs::write(&packed, gzip(kaggle(10).as_bytes())).unwrap();
        let a = prepare(&plain, &dir.path().join("a")).unwrap();
        let b = prepare(&packed, &dir.path().join("b")).unwrap();
        for (x, y) in [(&a.train_path, &b.train_path), (&a.test_path, &b.test_path)] {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
        // blocks of about two lines: the error names the file's line
        let line = kaggle(1).lines().nth(1).unwrap().len() + 1;
        let c = prepare_in_blocks(&packed, &dir.path().join("c"), 2 * line).unwrap();
        assert_eq!(
            std::fs::read(&a.train_path).unwrap(),
            std::fs::read(&c.train_path).unwrap()
        );
        let bad = kaggle(9).replacen(",\"0\"\n8,", ",\"oops\"\n8,", 1);
        std::fs::write(&packed, gzip(bad.as_bytes())).unwrap();
        let e = prepare_in_blocks(&packed, dir.path(), 2 * line)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.csv.gz:9:31: not a number: 'oops'"), "{e}");
        std::fs::write(&packed, gzip(&vec![b'0'; GZ_BLOCK + 1])).unwrap();
        match prepare(&packed, dir.path()) {
            Err(DataError::LongLine { line: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
