//! `ccfraud prepare`: a CSV of transactions → `train_data.csv` and
//! `test_data.csv`, in one of two forms.
//!
//! * Kaggle's `creditcard.csv` (every header name one of Kaggle's and no
//!   split or label option given): the lab's files — no header; `V1`..`V28`,
//!   standardized `Amount`, `Class` — with the standard time-ordered split.
//!   `V` values are copied byte for byte, `Amount` is standardized with the
//!   lab's constants and written in shortest round-trip form, so output is
//!   deterministic and byte-identical across runs.
//! * Any other CSV with a header, or any file given `--label`, `--split` or
//!   `--test-fraction` (issue 11, "bring your own data"): both files keep the
//!   header line and every data row byte for byte — the user's columns,
//!   strings and empty fields untouched — and only the 0/1 label column is
//!   read. The split is time-ordered (file order, the last `--test-fraction`
//!   is test) or seeded and stratified by label, so both files hold frauds.
//!
//! Nothing is written until every row has been read and checked; the two
//! files then appear atomically (temporary names, renamed into place).

use super::csv::{
    column_count, parse_number, read_parallel, records, text_blocks, unquote, Layout, Problem,
    Role, Shown, GZ_BLOCK,
};
use super::split::{stratified_holdout, time_split_point};
use super::{standardize_amount, DataError, FEATURE_NAMES, N_FEATURES};
use std::io::Write;
use std::ops::Range;
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

/// The label column when `--label` is not given (Kaggle's).
pub const DEFAULT_LABEL: &str = "Class";
/// Share of rows in `test_data.csv` when `--test-fraction` is not given.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;
/// Seed of the random split when `--seed` is not given (training's default
/// seed too).
pub const DEFAULT_SEED: u64 = 42;

/// How `prepare` reads and splits its input. The default (nothing set)
/// turns Kaggle's file into the lab's; any field set selects the general
/// form, which copies header and rows as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    /// The 0/1 label column (default [`DEFAULT_LABEL`]).
    pub label: Option<String>,
    /// How rows are split (default [`Split::Time`]).
    pub split: Option<Split>,
    /// Share of rows in the test file, above 0 and below 1 (default
    /// [`DEFAULT_TEST_FRACTION`]).
    pub test_fraction: Option<f64>,
}

/// Which rows go to the test file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Rows in file order: the first part is train, the last is test.
    Time,
    /// Rows drawn with this seed, stratified by label (each file gets its
    /// share of each class); each file keeps the rows' file order.
    Random { seed: u64 },
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::Time => f.write_str("time-ordered split"),
            Split::Random { seed } => write!(f, "random split (seed {seed})"),
        }
    }
}

impl Options {
    /// True when no option is set: Kaggle's header then gives the lab's files.
    fn is_default(&self) -> bool {
        *self == Options::default()
    }

    fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(DEFAULT_LABEL)
    }

    /// The test fraction, checked to lie strictly between 0 and 1.
    fn test_fraction(&self) -> Result<f64, PrepareError> {
        let f = self.test_fraction.unwrap_or(DEFAULT_TEST_FRACTION);
        if f > 0.0 && f < 1.0 {
            Ok(f)
        } else {
            Err(PrepareError::TestFraction(f))
        }
    }
}

/// Why `prepare` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Reading the input (a bad row names file, line and column) or writing
    /// the output.
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(
        "{path}:1: the header has no label column '{label}' (its columns: {columns}); \
         name the 0/1 label column with --label"
    )]
    NoLabel {
        path: PathBuf,
        label: String,
        /// The header's names, quoted, cut after the first 20.
        columns: String,
    },
    #[error("--test-fraction must be above 0 and below 1, found {0}")]
    TestFraction(f64),
    #[error("--seed only chooses the rows of --split random (the time split draws nothing)")]
    SeedWithoutRandom,
    #[error("{path}: {rows} data row(s): a train and a test file need at least 2")]
    TooFewRows { path: PathBuf, rows: usize },
    #[error(
        "{file}: the {split} would give it {rows} row(s), {frauds} of them with {label}=1: \
         training and evaluation need both classes (label 0 and 1) in each file{hint}"
    )]
    OneClass {
        file: &'static str,
        split: Split,
        rows: usize,
        frauds: usize,
        label: String,
        hint: &'static str,
    },
}

impl PrepareError {
    /// The exit code: bad flags are usage errors, the rest bad input.
    pub fn exit(&self) -> crate::sagemaker::Exit {
        use crate::sagemaker::Exit;
        match self {
            PrepareError::TestFraction(_) | PrepareError::SeedWithoutRandom => Exit::Usage,
            _ => Exit::BadInput,
        }
    }
}

/// Converts a Kaggle-format file into the lab's two files inside `out_dir`
/// ([`prepare_with`] with no option set).
pub fn prepare(input: &Path, out_dir: &Path) -> Result<Prepared, PrepareError> {
    prepare_with(input, out_dir, &Options::default())
}

/// Splits `input` into `out_dir/train_data.csv` and `out_dir/test_data.csv`:
/// the lab's files from Kaggle's when no option is set, else header and rows
/// copied as they are (see the module's documentation).
pub fn prepare_with(
    input: &Path,
    out_dir: &Path,
    options: &Options,
) -> Result<Prepared, PrepareError> {
    prepare_in_blocks(input, out_dir, options, GZ_BLOCK)
}

/// What the header line chose, and the rows read under it so far.
enum Form {
    /// Kaggle's header: each row converted to a lab line, with its label.
    Lab {
        layout: Layout,
        rows: Vec<(Vec<u8>, u8)>,
    },
    /// Any header: rows kept as they are.
    Copied(Copied),
}

/// Header and data rows of the general form, as their own bytes.
struct Copied {
    /// 0-based column of the label, and the header's column count.
    label_col: usize,
    columns: usize,
    /// The header line without its line end (empty until its block is cut).
    header: Vec<u8>,
    /// The header's line end (`\r\n` or `\n`), written after every line.
    newline: &'static [u8],
    /// Every data row's text without its line end, back to back; row `i`
    /// ends at `ends[i]`.
    text: Vec<u8>,
    ends: Vec<usize>,
    labels: Vec<u8>,
}

impl Copied {
    fn row(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// The header, then rows `part`, each line ending as the header does.
    fn write(&self, part: &[usize], w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(&self.header)?;
        w.write_all(self.newline)?;
        part.iter().try_for_each(|&i| {
            w.write_all(self.row(i))?;
            w.write_all(self.newline)
        })
    }
}

/// [`prepare_with`], a `.csv.gz` decompressed `block` bytes at a time.
fn prepare_in_blocks(
    input: &Path,
    out_dir: &Path,
    options: &Options,
    block: usize,
) -> Result<Prepared, PrepareError> {
    let fraction = options.test_fraction()?;
    let raw = read_parallel(input)?;
    // Chosen by the first line, the header.
    let mut form: Option<Form> = None;
    // A header refused for a reason that is not a field's (no label
    // column): `records` is stopped, and this is the error.
    let mut refused: Option<PrepareError> = None;
    // A `.csv.gz` arrives a bounded block of lines at a time.
    let read = text_blocks(input, &raw, block, |text, lines_before| {
        // Where each record of this block starts (general form only).
        let mut starts = Vec::new();
        let header_here = form.is_none();
        records(text, |rec| match &mut form {
            None => match choose_form(input, options, rec)? {
                Ok(f) => {
                    if matches!(f, Form::Copied(_)) {
                        starts.push(record_start(rec)?);
                    }
                    form = Some(f);
                    Ok(())
                }
                Err(e) => {
                    refused = Some(e);
                    // Stops `records`; `refused` is the error reported.
                    Err((1, Problem::Empty))
                }
            },
            Some(Form::Lab { layout, rows }) => lab_row(layout, rec).map(|row| rows.push(row)),
            Some(Form::Copied(c)) => {
                column_count(c.columns, rec.len())?;
                let field = rec.get(c.label_col).unwrap_or_default();
                let label = match parse_number(field) {
                    Ok(0.0) => 0,
                    Ok(1.0) => 1,
                    _ => return Err((c.label_col + 1, Problem::Label(Shown::new(field)))),
                };
                c.labels.push(label);
                starts.push(record_start(rec)?);
                Ok(())
            }
        })
        .map_err(|e| DataError::Row {
            path: input.to_owned(),
            line: lines_before + e.line,
            column: e.column,
            problem: e.problem,
        })?;
        if let Some(Form::Copied(c)) = &mut form {
            keep_rows(c, text, &starts, header_here);
        }
        Ok(())
    });
    if let Some(e) = refused {
        return Err(e);
    }
    read?;
    let out = Out::new(out_dir);
    match form {
        None => Err(no_rows(input)),
        Some(Form::Lab { rows, .. }) => write_lab(input, out, &rows),
        Some(Form::Copied(c)) => write_copied(input, out, options, fraction, &c),
    }
}

fn no_rows(input: &Path) -> PrepareError {
    DataError::NoRows {
        path: input.to_owned(),
    }
    .into()
}

/// The form a header line chooses: Kaggle's conversion when no option is
/// set and every name is one of Kaggle's (`Time`, `V1`..`V28`, `Amount` or
/// `Amount_std`, `Class`; a missing or repeated one is then an error),
/// else the general form, which needs the label column. The outer error is
/// a field's (a column and a problem), the inner one the header's.
#[allow(clippy::type_complexity)]
fn choose_form(
    input: &Path,
    options: &Options,
    header: &csv::ByteRecord,
) -> std::result::Result<Result<Form, PrepareError>, (usize, Problem)> {
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, raw)| column_name(i, raw))
        .collect();
    let kaggle = |n: &String| {
        matches!(n.as_str(), "Time" | "Amount_std") || FEATURE_NAMES.contains(&n.as_str())
    };
    if options.is_default() && names.iter().all(|n| kaggle(n) || n == DEFAULT_LABEL) {
        let layout = Layout::from_header(header)?;
        return Ok(Ok(Form::Lab {
            layout,
            rows: Vec::new(),
        }));
    }
    let label = options.label();
    let mut at = names.iter().enumerate().filter(|(_, n)| *n == label);
    let Some((label_col, _)) = at.next() else {
        const SHOWN: usize = 20;
        let mut columns: Vec<String> = names.iter().take(SHOWN).map(|n| format!("'{n}'")).collect();
        if names.len() > SHOWN {
            columns.push(format!("… {} more", names.len() - SHOWN));
        }
        return Ok(Err(PrepareError::NoLabel {
            path: input.to_owned(),
            label: label.to_owned(),
            columns: columns.join(", "),
        }));
    };
    if let Some((again, _)) = at.next() {
        return Err((again + 1, Problem::Duplicate(Shown::new(label.as_bytes()))));
    }
    Ok(Ok(Form::Copied(Copied {
        label_col,
        columns: names.len(),
        header: Vec::new(),
        newline: b"\n",
        text: Vec::new(),
        ends: Vec::new(),
        labels: Vec::new(),
    })))
}

/// A header field as a name: spaces and one level of quotes around it cut,
/// and a UTF-8 byte-order mark before the first.
fn column_name(i: usize, raw: &[u8]) -> String {
    let raw = match raw {
        [0xEF, 0xBB, 0xBF, rest @ ..] if i == 0 => rest,
        _ => raw,
    };
    String::from_utf8_lossy(unquote(raw)).into_owned()
}

/// Byte offset of a record in the text `records` was given.
fn record_start(rec: &csv::ByteRecord) -> std::result::Result<usize, (usize, Problem)> {
    rec.position()
        .and_then(|p| usize::try_from(p.byte()).ok())
        .ok_or_else(|| (1, Problem::Malformed("no record position".into())))
}

/// Appends the records of `block` starting at `starts` (the header first
/// when `header_here`) to `c`: each its own bytes, from its start to the
/// next record's, less the blank lines around it and its line end.
fn keep_rows(c: &mut Copied, block: &[u8], starts: &[usize], header_here: bool) {
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(block.len());
        let r = record_text(&block[start..end]);
        let (a, b) = (start + r.start, start + r.end);
        if k == 0 && header_here {
            c.header = block[a..b].to_vec();
            if block[b..].starts_with(b"\r\n") {
                c.newline = b"\r\n";
            }
        } else {
            c.text.extend_from_slice(&block[a..b]);
            c.ends.push(c.text.len());
        }
    }
}

/// Where a record's own text lies in `span`, which runs from the record's
/// start to the next one's: the blank lines the CSV reader skipped (lines of
/// nothing but spaces, tabs, `\r`) and the line end are left out. A record
/// never begins or ends with a blank line of its own: a quoted field's last
/// line holds its closing quote, and an unquoted field holds no line end.
fn record_text(span: &[u8]) -> Range<usize> {
    let is_end = |b: &u8| *b == b'\n' || *b == b'\r';
    let (mut a, mut b) = (0, span.len());
    while let Some(nl) = span[a..b].iter().position(is_end) {
        if !span[a..a + nl].iter().all(u8::is_ascii_whitespace) {
            break;
        }
        a += nl + 1;
    }
    loop {
        while b > a && is_end(&span[b - 1]) {
            b -= 1;
        }
        match span[a..b].iter().rposition(is_end) {
            Some(nl) if span[a + nl + 1..b].iter().all(u8::is_ascii_whitespace) => b = a + nl,
            _ => return a..b,
        }
    }
}

/// The output folder and the two files `prepare` writes in it.
struct Out {
    dir: PathBuf,
    train: PathBuf,
    test: PathBuf,
}

impl Out {
    fn new(dir: &Path) -> Out {
        Out {
            dir: dir.to_owned(),
            train: dir.join("train_data.csv"),
            test: dir.join("test_data.csv"),
        }
    }

    /// Creates the folder and writes both files atomically.
    fn write(&self, train: Contents<'_>, test: Contents<'_>) -> Result<(), DataError> {
        fs_err::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        write_atomic(&[(&self.train, train), (&self.test, test)])
    }
}

fn io(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The lab's two files, standard time split.
fn write_lab(input: &Path, out: Out, rows: &[(Vec<u8>, u8)]) -> Result<Prepared, PrepareError> {
    if rows.is_empty() {
        return Err(no_rows(input));
    }
    let split = time_split_point(rows.len());
    let (train, test) = rows.split_at(split);
    let lines = |part| move |w: &mut dyn Write| lab_lines(part, w);
    out.write(&lines(train), &lines(test))?;
    let frauds = |r: &[(Vec<u8>, u8)]| r.iter().filter(|(_, y)| *y == 1).count();
    Ok(Prepared {
        train_rows: train.len(),
        train_frauds: frauds(train),
        test_rows: test.len(),
        test_frauds: frauds(test),
        train_path: out.train,
        test_path: out.test,
    })
}

/// The general form's two files: the header, then the rows of each part in
/// file order, each line ending as the header does. Refused before writing
/// when a part would lack a class.
fn write_copied(
    input: &Path,
    out: Out,
    options: &Options,
    fraction: f64,
    c: &Copied,
) -> Result<Prepared, PrepareError> {
    let n = c.labels.len();
    if n == 0 {
        return Err(no_rows(input));
    }
    if n < 2 {
        return Err(PrepareError::TooFewRows {
            path: input.to_owned(),
            rows: n,
        });
    }
    let split = options.split.unwrap_or(Split::Time);
    let (train, test): (Vec<usize>, Vec<usize>) = match split {
        Split::Time => {
            let n_test = time_test_rows(n, fraction);
            ((0..n - n_test).collect(), (n - n_test..n).collect())
        }
        Split::Random { seed } => stratified_holdout(&c.labels, fraction, seed),
    };
    let frauds = |part: &[usize]| part.iter().filter(|&&i| c.labels[i] == 1).count();
    for (file, part) in [("train_data.csv", &train), ("test_data.csv", &test)] {
        let f = frauds(part);
        if f == 0 || f == part.len() {
            let total = frauds(&(0..n).collect::<Vec<_>>());
            return Err(PrepareError::OneClass {
                file,
                split,
                rows: part.len(),
                frauds: f,
                label: options.label().to_owned(),
                hint: match split {
                    _ if total < 2 || n - total < 2 => {
                        " (the input needs at least 2 rows of each class)"
                    }
                    Split::Time => " (--split random stratifies by label)",
                    Split::Random { .. } => "",
                },
            });
        }
    }
    let lines = |part| move |w: &mut dyn Write| c.write(part, w);
    out.write(&lines(&train), &lines(&test))?;
    Ok(Prepared {
        train_rows: train.len(),
        train_frauds: frauds(&train),
        test_rows: test.len(),
        test_frauds: frauds(&test),
        train_path: out.train,
        test_path: out.test,
    })
}

/// Rows in the test part of a time split of `n` rows (`n >= 2`): ⌈n ×
/// fraction⌉, as the lab's split (56,962 of 284,807 at 0.2, see
/// [`time_split_point`]), and at least one row in each part. A product
/// within 1e-6 of a whole number is that number: 0.2 × 10 is 2, though
/// 0.2 is not exact in binary.
fn time_test_rows(n: usize, fraction: f64) -> usize {
    let x = n as f64 * fraction;
    let whole = if (x - x.round()).abs() < 1e-6 {
        x.round()
    } else {
        x.ceil()
    };
    (whole as usize).clamp(1, n - 1)
}

/// One input record → one lab-format line: features in model order (copied
/// byte for byte, `Amount` standardized in shortest round-trip form), then
/// the label.
fn lab_row(
    layout: &Layout,
    rec: &csv::ByteRecord,
) -> std::result::Result<(Vec<u8>, u8), (usize, Problem)> {
    let roles = layout.roles();
    let mut fields: [Option<std::borrow::Cow<'_, [u8]>>; N_FEATURES] = Default::default();
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
                fields[N_FEATURES - 1] = Some(std.into());
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

/// Lab lines, written in order.
fn lab_lines(part: &[(Vec<u8>, u8)], w: &mut dyn Write) -> std::io::Result<()> {
    part.iter().try_for_each(|(r, _)| w.write_all(r))
}

/// A file's contents, written to any writer.
type Contents<'a> = &'a dyn Fn(&mut dyn Write) -> std::io::Result<()>;

/// Writes every file under its temporary name, then renames them all into
/// place; on an error the temporary files are removed, so a failed write
/// leaves no new file.
fn write_atomic(files: &[(&PathBuf, Contents<'_>)]) -> Result<(), DataError> {
    let write = |path: &Path, contents: Contents<'_>| -> std::io::Result<()> {
        let file = fs_err::File::create(crate::partial_path(path))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        contents(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    let result = files
        .iter()
        .try_for_each(|(path, contents)| write(path, *contents).map_err(|e| io(path, e)))
        .and_then(|()| {
            files.iter().try_for_each(|(path, _)| {
                fs_err::rename(crate::partial_path(path), path).map_err(|e| io(path, e))
            })
        });
    if result.is_err() {
        for (path, _) in files {
            let _ = fs_err::remove_file(crate::partial_path(path));
        }
    }
    result
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
        // not Kaggle's header: the general form, which needs a label
        std::fs::write(&input, "a,\"b\"\n1,2\n").unwrap();
        let e = prepare(&input, dir.path()).unwrap_err();
        assert!(matches!(e, PrepareError::NoLabel { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("x.csv:1: the header has no label column 'Class' (its columns: 'a', 'b')"),
            "{e}"
        );
        assert!(e.contains("--label"), "{e}");
        // Kaggle's names only: Kaggle's rules
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
        let none = Options::default();
        let c = prepare_in_blocks(&packed, &dir.path().join("c"), &none, 2 * line).unwrap();
        assert_eq!(
            std::fs::read(&a.train_path).unwrap(),
            std::fs::read(&c.train_path).unwrap()
        );
        let bad = kaggle(9).replacen(",\"0\"\n8,", ",\"oops\"\n8,", 1);
        std::fs::write(&packed, gzip(bad.as_bytes())).unwrap();
        let e = prepare_in_blocks(&packed, dir.path(), &none, 2 * line)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.csv.gz:9:31: not a number: 'oops'"), "{e}");
        std::fs::write(&packed, gzip(&vec![b'0'; GZ_BLOCK + 1])).unwrap();
        match prepare(&packed, dir.path()) {
            Err(PrepareError::Data(DataError::LongLine { line: 1, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    /// A CSV of the user's own: a string column, quoted commas, empty
    /// fields; every fifth row a fraud.
    fn own(rows: usize) -> String {
        let mut s = String::from("amount,country,note,is_fraud,hour\n");
        for r in 0..rows {
            let country = ["US", "GB", ""][r % 3];
            let note = if r % 4 == 0 { "\"a, b\"" } else { "" };
            let hour = if r % 7 == 0 {
                String::new()
            } else {
                (r % 24).to_string()
            };
            let y = u8::from(r % 5 == 0);
            s.push_str(&format!("{r}.5,{country},{note},{y},{hour}\n"));
        }
        s
    }

    fn label(name: &str) -> Options {
        Options {
            label: Some(name.into()),
            ..Options::default()
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    /// The general form keeps the header and copies each row as it is;
    /// the time split keeps file order, the last fifth is test.
    #[test]
    fn any_header_is_copied_row_by_row_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("own.csv");
        let text = own(50);
        std::fs::write(&input, &text).unwrap();
        let p = prepare_with(&input, &dir.path().join("out"), &label("is_fraud")).unwrap();
        assert_eq!((p.train_rows, p.test_rows), (40, 10));
        assert_eq!((p.train_frauds, p.test_frauds), (8, 2));
        let (train, test) = (read(&p.train_path), read(&p.test_path));
        let header = "amount,country,note,is_fraud,hour\n";
        assert!(train.starts_with(header) && test.starts_with(header));
        // train rows then test rows are the input's rows, byte for byte
        assert_eq!(
            format!(
                "{header}{}{}",
                &train[header.len()..],
                &test[header.len()..]
            ),
            text
        );
        assert!(
            test.starts_with(&format!("{header}40.5,GB,\"a, b\",1,16\n")),
            "{test}"
        );
    }

    /// The default label is `Class`; a header that is not Kaggle's takes
    /// the general form without any option.
    #[test]
    fn a_class_column_needs_no_option() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("c.csv");
        let text = own(25).replace("is_fraud", "Class");
        std::fs::write(&input, &text).unwrap();
        let p = prepare(&input, dir.path()).unwrap();
        assert_eq!((p.train_rows, p.test_rows, p.test_frauds), (20, 5, 1));
        assert!(read(&p.train_path).starts_with("amount,country,note,Class,hour\n"));
    }

    /// Kaggle's own file with an option: header and rows as they are (Time,
    /// raw Amount), not the lab's conversion.
    #[test]
    fn kaggle_with_an_option_is_copied_too() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("k.csv");
        std::fs::write(&input, kaggle(10)).unwrap();
        let opts = Options {
            test_fraction: Some(0.3),
            ..Options::default()
        };
        let e = prepare_with(&input, dir.path(), &opts).unwrap_err();
        // the time split's test part (rows 7..9) holds no fraud
        assert!(
            e.to_string().contains(
                "test_data.csv: the time-ordered split would give it 3 row(s), 0 of them with \
                 Class=1"
            ),
            "{e}"
        );
        assert!(e.to_string().contains("--split random"), "{e}");
        let opts = Options {
            split: Some(Split::Random { seed: 1 }),
            ..opts
        };
        let p = prepare_with(&input, dir.path(), &opts).unwrap();
        assert_eq!((p.train_rows, p.test_rows), (7, 3));
        assert_eq!((p.train_frauds, p.test_frauds), (1, 1));
        let lines: Vec<String> = kaggle(10).lines().map(|l| format!("{l}\n")).collect();
        let train = read(&p.train_path);
        assert!(train.starts_with(&lines[0]), "{train}");
        assert!(train[lines[0].len()..]
            .split_inclusive('\n')
            .all(|l| lines[1..].contains(&l.to_string())));
    }

    /// The random split: reproducible for a seed, different for another,
    /// stratified (each file its share of each class), each file in the
    /// input's order, and together every row once.
    #[test]
    fn random_split_is_seeded_and_stratified() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("own.csv");
        let text = own(200);
        std::fs::write(&input, &text).unwrap();
        let run = |seed: u64, out: &str| {
            let opts = Options {
                label: Some("is_fraud".into()),
                split: Some(Split::Random { seed }),
                test_fraction: Some(0.25),
            };
            let p = prepare_with(&input, &dir.path().join(out), &opts).unwrap();
            (p.clone(), read(&p.train_path), read(&p.test_path))
        };
        let (p, train, test) = run(7, "a");
        assert_eq!((p.train_rows, p.test_rows), (150, 50));
        assert_eq!((p.train_frauds, p.test_frauds), (30, 10));
        let (_, train2, test2) = run(7, "b");
        assert_eq!((&train, &test), (&train2, &test2));
        let (_, train3, _) = run(8, "c");
        assert_ne!(train, train3);
        let rows: Vec<&str> = text.split_inclusive('\n').skip(1).collect();
        let order = |file: &str| -> Vec<usize> {
            file.split_inclusive('\n')
                .skip(1)
                .map(|l| rows.iter().position(|r| *r == l).unwrap())
                .collect()
        };
        let (a, b) = (order(&train), order(&test));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && b.windows(2).all(|w| w[0] < w[1]));
        let mut all = [a, b].concat();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
        // not simply the last rows
        assert_ne!(order(&test), (150..200).collect::<Vec<_>>());
    }

    /// Blank lines are dropped, a quoted field may span lines, `\r\n` line
    /// ends are kept, and a last line without its end gets one.
    #[test]
    fn rows_keep_their_bytes_around_blank_lines_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("w.csv");
        let text = "\u{feff}id,\"text\",y\r\n\
                    1,\"two\r\nlines\",0\r\n\
                    \r\n   \r\n\
                    2, spaced ,1\r\n\
                    3,,0\r\n\
                    4,\"x\",1";
        std::fs::write(&input, text).unwrap();
        let opts = Options {
            label: Some("y".into()),
            test_fraction: Some(0.5),
            ..Options::default()
        };
        let p = prepare_with(&input, dir.path(), &opts).unwrap();
        assert_eq!(
            read(&p.train_path),
            "\u{feff}id,\"text\",y\r\n1,\"two\r\nlines\",0\r\n2, spaced ,1\r\n"
        );
        assert_eq!(
            read(&p.test_path),
            "\u{feff}id,\"text\",y\r\n3,,0\r\n4,\"x\",1\r\n"
        );
    }

    /// At 0.2 the time split is the lab's, for every size; other
    /// fractions round up, whole products stay whole, each part keeps a row.
    #[test]
    fn time_split_sizes() {
        for n in (2..5000).chain([284_807, 1_000_000, 12_345_679]) {
            assert_eq!(time_test_rows(n, 0.2), n - time_split_point(n), "{n}");
        }
        assert_eq!(time_test_rows(10, 0.7), 7);
        assert_eq!(time_test_rows(100, 0.07), 7);
        assert_eq!(time_test_rows(10, 0.25), 3);
        assert_eq!(time_test_rows(2, 0.01), 1);
        assert_eq!(time_test_rows(2, 0.99), 1);
        assert_eq!(time_test_rows(1000, 0.999), 999);
    }

    #[test]
    fn record_text_cuts_blank_lines_and_line_ends_only() {
        let cut = |s: &str| {
            let r = record_text(s.as_bytes());
            s[r].to_string()
        };
        assert_eq!(cut("a,b\n"), "a,b");
        assert_eq!(cut("\na,b\r"), "a,b");
        assert_eq!(cut(" \t\r\n\na, b \n  \n\n"), "a, b ");
        assert_eq!(cut("\"x\n\n\",1\r\n"), "\"x\n\n\",1");
        assert_eq!(cut("  a,b  "), "  a,b  ");
    }

    /// Every way the general form refuses its input names the file, line
    /// and column, and writes nothing.
    #[test]
    fn general_form_errors_name_the_place_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("own.csv");
        let out = dir.path().join("out");
        let err = |text: &str, opts: &Options| {
            std::fs::write(&input, text).unwrap();
            let e = prepare_with(&input, &out, opts).unwrap_err();
            assert!(!out.exists(), "{e}: nothing written, not even the folder");
            e.to_string()
        };
        let opts = label("is_fraud");
        let e = err(&own(10).replacen(",1,", ",yes,", 1), &opts);
        assert!(
            e.contains("own.csv:2:4: label must be 0 or 1, found 'yes'"),
            "{e}"
        );
        let e = err(&own(10).replacen(",0,", ",,", 1), &opts);
        assert!(
            e.contains("own.csv:3:4: label must be 0 or 1, found ''"),
            "{e}"
        );
        let e = err(&format!("{}1,2\n", own(4)), &opts);
        assert!(
            e.contains("own.csv:6:3: expected 5 columns, found 2"),
            "{e}"
        );
        let e = err(&own(10), &label("fraud"));
        assert!(e.contains("no label column 'fraud' (its columns: 'amount', 'country', 'note', 'is_fraud', 'hour')"), "{e}");
        let e = err("y,x,y\n1,2,0\n", &label("y"));
        assert!(e.contains("own.csv:1:3: column 'y' appears twice"), "{e}");
        let e = err("is_fraud\n", &opts);
        assert!(e.contains("own.csv: no data rows after the header"), "{e}");
        let e = err("is_fraud\n1\n", &opts);
        assert!(
            e.contains("own.csv: 1 data row(s): a train and a test file need at least 2"),
            "{e}"
        );
        let e = err(&own(10).replace(",1,", ",0,"), &opts);
        assert!(e.contains("train_data.csv: the time-ordered split would give it 8 row(s), 0 of them with is_fraud=1"), "{e}");
        assert!(e.contains("at least 2 rows of each class"), "{e}");
        let e = err(
            &own(10),
            &Options {
                test_fraction: Some(1.0),
                ..opts.clone()
            },
        );
        assert_eq!(e, "--test-fraction must be above 0 and below 1, found 1");
        let e = err(
            &own(10),
            &Options {
                test_fraction: Some(f64::NAN),
                ..opts.clone()
            },
        );
        assert_eq!(e, "--test-fraction must be above 0 and below 1, found NaN");
        let long: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
        let e = err(&format!("{}\n", long.join(",")), &opts);
        assert!(e.contains("'c19', … 10 more)"), "{e}");
        assert!(!e.contains("'c20'"), "{e}");
    }

    /// A `.csv.gz` in the general form: same files as the plain CSV, even
    /// when cut into blocks of a few lines, and errors name the file's line.
    #[test]
    fn general_form_reads_gzip_in_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, packed) = (dir.path().join("o.csv"), dir.path().join("o.csv.gz"));
        let text = own(60);
        std::fs::write(&plain, &text).unwrap();
        std::fs::write(&packed, gzip(text.as_bytes())).unwrap();
        let opts = Options {
            label: Some("is_fraud".into()),
            split: Some(Split::Random { seed: 3 }),
            test_fraction: None,
        };
        let a = prepare_with(&plain, &dir.path().join("a"), &opts).unwrap();
        let b = prepare_in_blocks(&packed, &dir.path().join("b"), &opts, 40).unwrap();
        assert_eq!((b.train_rows, b.test_rows), (48, 12));
        for (x, y) in [(&a.train_path, &b.train_path), (&a.test_path, &b.test_path)] {
            assert_eq!(read(x), read(y));
        }
        let bad = text.replacen("57.5,", "57.5,x,", 1);
        std::fs::write(&packed, gzip(bad.as_bytes())).unwrap();
        let e = prepare_in_blocks(&packed, dir.path(), &opts, 40)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("o.csv.gz:59:6: expected 5 columns, found 6"),
            "{e}"
        );
    }

    /// The two files appear together or not at all: a test file that
    /// cannot be written leaves no train file either.
    #[test]
    fn a_failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("own.csv");
        std::fs::write(&input, own(25)).unwrap();
        let out = dir.path().join("out");
        // a folder where the test file's temporary file would go
        std::fs::create_dir_all(crate::partial_path(&out.join("test_data.csv"))).unwrap();
        let e = prepare_with(&input, &out, &label("is_fraud")).unwrap_err();
        assert!(
            matches!(e, PrepareError::Data(DataError::Io { .. })),
            "{e:?}"
        );
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec![".test_data.csv.partial"]);
    }
}
