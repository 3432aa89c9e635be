//! Streaming rows of named columns out of XLSX, CSV, TSV and JSON-lines files.

use std::borrow::Cow;
use std::path::Path;

use calamine::{open_workbook, DataRef, Reader, Xlsx};

use crate::columns::{locate_columns, Columns};
use crate::error::{DatasetError, Location, Result};
use crate::format::{read_text, FileFormat, TextEncoding};

/// Which file to read and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableSource<'a> {
    pub path: &'a Path,
    pub format: FileFormat,
    /// Worksheet name (XLSX); the first sheet when `None`.
    pub sheet: Option<&'a str>,
    pub encoding: TextEncoding,
}

/// Streams the named columns of a table file (XLSX, CSV, TSV, JSON lines; CSV, TSV and JSON lines optionally
/// gzip-compressed), row by row.
///
/// Calls `f(row, cells)` for every data row in file order, with `cells[i]` the value of
/// `columns[i]` (`None` when missing or empty; the callback may take the values); `row` is
/// 1-based with the header as row 1 (the line, for JSON lines, whose first object's keys stand for the header).
/// The format comes from the extension (as [`FileFormat::for_classification`] reads it); `sheet` picks an XLSX
/// worksheet (default: the first).
///
/// ```no_run
/// let mut rows = 0;
/// datasets::read_table(
///     "ner_dataset.xlsx".as_ref(), None, datasets::TextEncoding::Auto, &["Word", "Tag"],
///     |_, _| { rows += 1; Ok(()) },
/// )?;
/// # Ok::<(), datasets::DatasetError>(())
/// ```
pub fn read_table<F>(path: &Path, sheet: Option<&str>, encoding: TextEncoding, columns: &[&str], f: F) -> Result<()>
where
    F: FnMut(u64, &mut [Option<Cow<'_, str>>]) -> Result<()>,
{
    let source = TableSource { path, format: FileFormat::for_classification(path)?, sheet, encoding };
    let required: Vec<[&str; 1]> = columns.iter().map(|c| [*c]).collect();
    let required: Vec<&[&str]> = required.iter().map(|c| c.as_slice()).collect();
    for_each_row(source, Columns { required: &required, optional: &[] }, f)?;
    Ok(())
}

/// Calls `f(row_number, cells)` for every data row, in file order. Row numbers are 1-based
/// with the header as row 1 (spreadsheet numbering; for CSV and TSV the record number; for JSON lines the line).
/// A cell is `None` when it is missing or empty.
///
/// Returns the header names the required columns were found under (one per required column).
pub(crate) fn for_each_row<F>(source: TableSource<'_>, columns: Columns<'_>, f: F) -> Result<Vec<String>>
where
    F: FnMut(u64, &mut [Option<Cow<'_, str>>]) -> Result<()>,
{
    match source.format {
        FileFormat::Xlsx => xlsx_rows(source, columns, f),
        FileFormat::Csv { gzip } => {
            let text = read_text(source.path, gzip, source.encoding)?;
            csv_rows(source.path, &text, b',', columns, f)
        }
        FileFormat::Tsv { gzip } => {
            let text = read_text(source.path, gzip, source.encoding)?;
            csv_rows(source.path, &text, b'\t', columns, f)
        }
        FileFormat::JsonLines { gzip } => {
            let text = read_text(source.path, gzip, source.encoding)?;
            crate::jsonl::object_rows(source.path, &text, columns, f)
        }
        FileFormat::Conll { .. } => {
            Err(DatasetError::InvalidOption(format!("{}: a CoNLL file has no named columns", source.path.display())))
        }
    }
}

fn csv_rows<F>(path: &Path, text: &str, delimiter: u8, columns: Columns<'_>, mut f: F) -> Result<Vec<String>>
where
    F: FnMut(u64, &mut [Option<Cow<'_, str>>]) -> Result<()>,
{
    let location = Location::file(path);
    if delimiter != b'\t' {
        if let Some(line) = unclosed_quote(text.as_bytes(), delimiter) {
            return Err(DatasetError::Csv {
                location: Location::file(path).with_line(line),
                message: "a quoted field opens here and is never closed, so it would swallow every later row: \
                          close its quote (a quote inside a quoted field is written twice, \"\")"
                    .into(),
            });
        }
    }
    // TSV has no quoting (a quote is part of the text); CSV quotes as RFC 4180 and pandas do.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .quoting(delimiter != b'\t')
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let csv_error = |row: u64, e: csv::Error| DatasetError::Csv {
        location: Location::file(path).with_row(row),
        message: e.to_string(),
    };
    let has_header = reader.read_record(&mut record).map_err(|e| csv_error(1, e))?;
    if !has_header || (record.iter().all(str::is_empty) && record.len() <= 1) {
        return Err(DatasetError::EmptyFile(location));
    }
    let header: Vec<String> = record.iter().map(str::to_owned).collect();
    let (positions, names) = locate_columns(&location, &header, columns)?;
    let mut row: u64 = 1;
    loop {
        row += 1;
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(row, e)),
        }
        // A blank line reads as one empty field: skip it, as pandas does.
        if record.len() == 1 && record.get(0).is_some_and(str::is_empty) {
            continue;
        }
        let mut cells: Vec<Option<Cow<'_, str>>> = positions
            .iter()
            .map(|p| p.and_then(|p| record.get(p)).filter(|s| !s.is_empty()).map(Cow::Borrowed))
            .collect();
        f(row, &mut cells)?;
    }
    Ok(names)
}

/// The 1-based line of a quoted field that is still open at the end of `bytes` (CSV as RFC 4180 and the `csv` crate
/// read it: a quote opens a field only at its start; inside, `""` is a quote and a lone `"` closes it), if any.
fn unclosed_quote(bytes: &[u8], delimiter: u8) -> Option<u64> {
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let mut opened_at = 0usize;
    for (offset, &byte) in bytes.iter().enumerate() {
        state = match state {
            State::FieldStart if byte == b'"' => {
                opened_at = offset;
                State::Quoted
            }
            State::FieldStart | State::Unquoted if byte == delimiter || byte == b'\n' => State::FieldStart,
            State::FieldStart | State::Unquoted => State::Unquoted,
            State::Quoted if byte == b'"' => State::QuoteInQuoted,
            State::Quoted => State::Quoted,
            State::QuoteInQuoted if byte == b'"' => State::Quoted,
            State::QuoteInQuoted if byte == delimiter || byte == b'\n' => State::FieldStart,
            State::QuoteInQuoted => State::Unquoted,
        };
    }
    matches!(state, State::Quoted).then(|| memchr::memchr_iter(b'\n', &bytes[..opened_at]).count() as u64 + 1)
}

/// The text a cell stands for, or the name of its type when it cannot stand for text.
fn cell_text(value: &DataRef<'_>) -> std::result::Result<Option<String>, &'static str> {
    let text = match value {
        DataRef::Empty => return Ok(None),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(x) => format_float(*x),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        // An error cell shows its text (`#NAME?`, `#N/A`, ...); keep it as the value.
        DataRef::Error(e) => e.to_string(),
        DataRef::DateTime(_) | DataRef::DateTimeIso(_) => return Err("a date/time"),
        DataRef::DurationIso(_) => return Err("a duration"),
    };
    Ok(if text.is_empty() { None } else { Some(text) })
}

/// A number as Excel shows it in a General cell: integers without a decimal point.
fn format_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        // Exact: |x| < 2^53.
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

fn xlsx_rows<F>(source: TableSource<'_>, columns: Columns<'_>, mut f: F) -> Result<Vec<String>>
where
    F: FnMut(u64, &mut [Option<Cow<'_, str>>]) -> Result<()>,
{
    let path = source.path;
    let xlsx_error =
        |location: Location, e: calamine::XlsxError| DatasetError::Xlsx { location, message: e.to_string() };
    if let Err(e) = std::fs::metadata(path) {
        return Err(DatasetError::io(path, e));
    }
    let mut workbook: Xlsx<_> = open_workbook(path).map_err(|e| xlsx_error(Location::file(path), e))?;
    let sheets = workbook.sheet_names();
    let sheet = match source.sheet {
        Some(name) => {
            if !sheets.iter().any(|s| s == name) {
                return Err(DatasetError::MissingSheet {
                    location: Location::file(path),
                    sheet: name.to_owned(),
                    found: sheets,
                });
            }
            name.to_owned()
        }
        None => match sheets.first() {
            Some(first) => first.clone(),
            None => return Err(DatasetError::EmptyFile(Location::file(path))),
        },
    };
    let location = Location::file(path).with_sheet(&sheet);
    let mut reader = workbook.worksheet_cells_reader(&sheet).map_err(|e| xlsx_error(location.clone(), e))?;

    // The header is the first row that has any cell.
    let mut header: Vec<String> = Vec::new();
    let mut header_row: Option<u32> = None;
    let mut pending = None;
    loop {
        let cell = reader.next_cell().map_err(|e| xlsx_error(location.clone(), e))?;
        let Some(cell) = cell else { break };
        let (r, c) = cell.get_position();
        match header_row {
            None => header_row = Some(r),
            Some(h) if h != r => {
                pending = Some(cell);
                break;
            }
            Some(_) => {}
        }
        let text = cell_text(cell.get_value()).map_err(|found| DatasetError::CellType {
            location: location.clone().with_row(u64::from(r) + 1),
            column: format!("#{}", c + 1),
            found: found.to_owned(),
        })?;
        let c = usize::try_from(c).unwrap_or(usize::MAX);
        if c < 16_384 {
            if header.len() <= c {
                header.resize(c + 1, String::new());
            }
            if let (Some(slot), Some(text)) = (header.get_mut(c), text) {
                *slot = text;
            }
        }
    }
    if header_row.is_none() || header.iter().all(String::is_empty) {
        return Err(DatasetError::EmptyFile(location));
    }
    let (positions, found) = locate_columns(&location, &header, columns)?;
    let names: Vec<&str> = found.iter().map(String::as_str).chain(columns.optional.iter().copied()).collect();
    // Column index -> slot in the row handed to `f`.
    let mut slot_of: Vec<Option<usize>> = vec![None; header.len()];
    for (slot, pos) in positions.iter().enumerate() {
        if let Some(entry) = pos.and_then(|p| slot_of.get_mut(p)) {
            *entry = Some(slot);
        }
    }

    let mut values: Vec<Option<Cow<'static, str>>> = vec![None; positions.len()];
    let mut current_row: Option<u32> = None;
    let mut emit = |row: u32, values: &mut [Option<Cow<'static, str>>]| -> Result<()> {
        f(u64::from(row) + 1, values)?;
        values.iter_mut().for_each(|v| *v = None);
        Ok(())
    };
    let mut next = pending;
    loop {
        let cell = match next.take() {
            Some(cell) => cell,
            None => match reader.next_cell().map_err(|e| xlsx_error(location.clone(), e))? {
                Some(cell) => cell,
                None => break,
            },
        };
        let (r, c) = cell.get_position();
        if current_row != Some(r) {
            if let Some(prev) = current_row {
                emit(prev, &mut values)?;
            }
            current_row = Some(r);
        }
        let slot = usize::try_from(c).ok().and_then(|c| slot_of.get(c).copied().flatten());
        if let Some(slot) = slot {
            let text = cell_text(cell.get_value()).map_err(|found| DatasetError::CellType {
                location: location.clone().with_row(u64::from(r) + 1),
                column: names.get(slot).copied().unwrap_or_default().to_owned(),
                found: found.to_owned(),
            })?;
            if let Some(v) = values.get_mut(slot) {
                *v = text.map(Cow::Owned);
            }
        }
    }
    if let Some(prev) = current_row {
        emit(prev, &mut values)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unclosed_quote_is_found_on_its_line_and_legal_quotes_are_not() {
        assert_eq!(unclosed_quote(b"a,b\n1,\"ok\"\n2,\"still open\n3,x\n", b','), Some(3));
        assert_eq!(unclosed_quote(b"a,b\n1,\"two\nlines, \"\"quoted\"\"\"\n2,5\" tall\n", b','), None);
        assert_eq!(unclosed_quote(b"a;b\n\"x;y\";z\n", b';'), None);
        assert_eq!(unclosed_quote(b"", b','), None);
    }

    use super::*;

    #[test]
    fn cell_text_of_each_cell_type() {
        assert_eq!(cell_text(&DataRef::Error(calamine::CellErrorType::Name)), Ok(Some("#NAME?".to_owned())));
        assert_eq!(cell_text(&DataRef::SharedString("None")), Ok(Some("None".to_owned())));
        assert_eq!(cell_text(&DataRef::String(String::new())), Ok(None));
        assert_eq!(cell_text(&DataRef::Empty), Ok(None));
        assert_eq!(cell_text(&DataRef::Float(2010.0)), Ok(Some("2010".to_owned())));
        assert_eq!(cell_text(&DataRef::Float(-0.25)), Ok(Some("-0.25".to_owned())));
        assert_eq!(cell_text(&DataRef::Float(1e20)), Ok(Some("100000000000000000000".to_owned())));
        assert_eq!(cell_text(&DataRef::Int(7)), Ok(Some("7".to_owned())));
        assert_eq!(cell_text(&DataRef::Bool(false)), Ok(Some("FALSE".to_owned())));
        assert!(cell_text(&DataRef::DateTimeIso("2020-01-01".into())).is_err());
        assert!(cell_text(&DataRef::DurationIso("PT1H".into())).is_err());
    }
}
