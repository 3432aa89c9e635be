//! JSON lines: one JSON object a line, blank lines skipped (Hugging Face datasets' `to_json` layout).
//!
//! Classification rows are objects with a text and a label field ([`object_rows`]); NER sentences are objects
//! with a `tokens` list and a `ner_tags` list of tag strings, or of integer ids into the `ClassLabel` names
//! ([`read_ner`]). Lines are numbered from 1; errors name the file and the line.

use std::borrow::Cow;
use std::path::Path;

use serde_json::{Map, Value};

use crate::columns::{locate_columns, Columns};
use crate::error::{DatasetError, Location, Result};
use crate::report::DropReason;
use crate::sentences::SentenceBuilder;

/// The non-blank lines of `text` with their 1-based numbers (a trailing `\r` removed).
fn lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    text.split('\n').enumerate().filter_map(|(index, line)| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        (!line.trim().is_empty()).then_some((index as u64 + 1, line))
    })
}

fn json_error(path: &Path, line: u64, message: String) -> DatasetError {
    DatasetError::Json { location: Location::file(path).with_line(line), message }
}

/// What kind of JSON value this is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses one line as a JSON object.
fn object(path: &Path, number: u64, line: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(json_error(path, number, format!("expected a JSON object, found {}", kind(&other)))),
        Err(e) => Err(json_error(path, number, format!("not valid JSON: {e}"))),
    }
}

/// The text a field stands for: a string (empty = missing), a number or a boolean in its JSON form; `None` when
/// the field is missing or null; an error for a list or an object.
fn cell(path: &Path, number: u64, name: &str, value: Option<Value>) -> Result<Option<Cow<'static, str>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok((!s.is_empty()).then_some(Cow::Owned(s))),
        Some(Value::Number(n)) => Ok(Some(Cow::Owned(n.to_string()))),
        Some(Value::Bool(b)) => Ok(Some(Cow::Owned(b.to_string()))),
        Some(other) => Err(json_error(
            path,
            number,
            format!("field {name:?} holds {}; expected text, a number or a boolean", kind(&other)),
        )),
    }
}

/// Calls `f(line, cells)` for every object, with `cells[i]` the value of column `i` (as
/// the table reader does for a header row). The first object's keys stand for the header: the required
/// columns are looked up among them. A later object that lacks a field has `None` there.
///
/// Returns the field names the required columns were found under (the first candidates when the file holds no
/// object).
pub(crate) fn object_rows<F>(path: &Path, text: &str, columns: Columns<'_>, mut f: F) -> Result<Vec<String>>
where
    F: FnMut(u64, &mut [Option<Cow<'_, str>>]) -> Result<()>,
{
    let mut fields: Option<(Vec<Option<String>>, Vec<String>)> = None;
    for (number, line) in lines(text) {
        let mut map = object(path, number, line)?;
        if fields.is_none() {
            let header: Vec<String> = map.keys().cloned().collect();
            let location = Location::file(path).with_line(number);
            let (positions, names) = locate_columns(&location, &header, columns)?;
            let keys = positions.iter().map(|p| p.and_then(|p| header.get(p).cloned())).collect();
            fields = Some((keys, names));
        }
        let Some((keys, _)) = &fields else { continue };
        let mut cells = Vec::with_capacity(keys.len());
        for key in keys {
            let value = key.as_ref().and_then(|k| map.remove(k));
            cells.push(cell(path, number, key.as_deref().unwrap_or_default(), value)?);
        }
        f(number, &mut cells)?;
    }
    Ok(match fields {
        Some((_, names)) => names,
        None => columns.required.iter().map(|c| c.first().copied().unwrap_or_default().to_owned()).collect(),
    })
}

/// The field names of NER JSON lines, and the tag names integer tags index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NerFields<'a> {
    /// The list of words (`tokens`).
    pub tokens: &'a str,
    /// The list of tags (`ner_tags`): strings, or integer ids into `label_names`.
    pub tags: &'a str,
    /// The `ClassLabel` names (index = id), for integer tags.
    pub label_names: Option<&'a [String]>,
}

/// A required list field of an NER line.
fn list<'v>(path: &Path, number: u64, map: &'v Map<String, Value>, name: &str) -> Result<&'v [Value]> {
    match map.get(name) {
        Some(Value::Array(items)) => Ok(items),
        None | Some(Value::Null) => {
            let found: Vec<&str> = map.keys().map(String::as_str).collect();
            Err(json_error(path, number, format!("no {name:?} list; fields found: {found:?}")))
        }
        Some(other) => Err(json_error(path, number, format!("field {name:?} holds {}; expected a list", kind(other)))),
    }
}

/// The tag string of one `ner_tags` item.
fn tag_of<'v>(path: &Path, number: u64, fields: NerFields<'v>, index: usize, item: &'v Value) -> Result<&'v str> {
    match item {
        Value::String(s) => Ok(s.as_str()),
        Value::Number(n) => {
            let Some(names) = fields.label_names else {
                return Err(json_error(
                    path,
                    number,
                    format!(
                        "{:?} holds integer tag ids ({n} at position {index}): pass the tag names they index (the \
                         dataset's ClassLabel names, id = position) as the label names (NerOptions::label_names)",
                        fields.tags
                    ),
                ));
            };
            n.as_u64()
                .and_then(|id| usize::try_from(id).ok())
                .and_then(|id| names.get(id))
                .map(String::as_str)
                .ok_or_else(|| {
                    json_error(
                        path,
                        number,
                        format!(
                            "tag id {n} (position {index} of {:?}) is not an index of the {} label names {names:?}",
                            fields.tags,
                            names.len()
                        ),
                    )
                })
        }
        other => Err(json_error(
            path,
            number,
            format!("{:?} item {index} is {}; expected a tag string or an integer id", fields.tags, kind(other)),
        )),
    }
}

/// Reads NER JSON lines into `builder`: one sentence a line (id `line N`), token positions lines. A line whose
/// lists are empty is a dropped (and counted) sentence; a missing list, lists of different lengths, a token that is
/// not a string, or a tag that is neither a string nor a known id are errors naming the line.
pub(crate) fn read_ner(path: &Path, text: &str, fields: NerFields<'_>, builder: &mut SentenceBuilder) -> Result<()> {
    for (number, line) in lines(text) {
        let map = object(path, number, line)?;
        let tokens = list(path, number, &map, fields.tokens)?;
        let tags = list(path, number, &map, fields.tags)?;
        if tokens.len() != tags.len() {
            return Err(json_error(
                path,
                number,
                format!(
                    "{:?} has {} items but {:?} has {}: one tag a token is needed",
                    fields.tokens,
                    tokens.len(),
                    fields.tags,
                    tags.len()
                ),
            ));
        }
        builder.tokens_read += tokens.len() as u64;
        if tokens.is_empty() {
            builder.dropped_sentences.add(DropReason::Missing(fields.tokens.to_owned()));
            continue;
        }
        let sentence = builder.new_sentence(format!("line {number}"));
        for (index, (token, item)) in tokens.iter().zip(tags).enumerate() {
            let Value::String(word) = token else {
                return Err(json_error(
                    path,
                    number,
                    format!("{:?} item {index} is {}; expected a string", fields.tokens, kind(token)),
                ));
            };
            let tag = tag_of(path, number, fields, index, item)?;
            builder.push(sentence, word, tag, None, number);
        }
    }
    Ok(())
}
