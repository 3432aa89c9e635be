//! Finding the wanted columns in a header row (a table's, or the first JSON-lines object's keys).

use crate::error::{DatasetError, Location, Result};

/// The columns to hand to the row callback: all `required` ones, then the `optional` ones
/// (always `None` where the header lacks them). Each required column is a list of candidate names: the first
/// one the header has is read (`["text", "review"]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Columns<'a> {
    pub required: &'a [&'a [&'a str]],
    pub optional: &'a [&'a str],
}

/// Maps the header to the positions of the wanted columns (required ones: the first candidate the header has).
/// Returns the positions and, for each required column, the candidate name it was found under.
pub(crate) fn locate_columns(
    location: &Location,
    header: &[String],
    columns: Columns<'_>,
) -> Result<(Vec<Option<usize>>, Vec<String>)> {
    let find = |name: &str| {
        header.iter().position(|h| h == name).or_else(|| header.iter().position(|h| h.trim() == name.trim()))
    };
    let mut positions = Vec::with_capacity(columns.required.len() + columns.optional.len());
    let mut names = Vec::with_capacity(columns.required.len());
    let mut missing = Vec::new();
    for candidates in columns.required {
        match candidates.iter().find_map(|name| find(name).map(|position| (position, *name))) {
            Some((position, name)) => {
                positions.push(Some(position));
                names.push(name.to_owned());
            }
            None => missing.push(candidates.join(" or ")),
        }
    }
    if !missing.is_empty() {
        return Err(DatasetError::MissingColumns { location: location.clone(), missing, found: header.to_vec() });
    }
    positions.extend(columns.optional.iter().map(|name| find(name)));
    Ok((positions, names))
}
