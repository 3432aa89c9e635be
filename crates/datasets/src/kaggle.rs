//! The Kaggle/GMB NER table layout (XLSX, CSV, TSV): a sentence-id column filled on each sentence's first row, a
//! word column, a tag column and an optional part-of-speech column.

use crate::columns::Columns;
use crate::error::Result;
use crate::report::DropReason;
use crate::sentences::SentenceBuilder;
use crate::table::{for_each_row, TableSource};

/// The column names of the layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KaggleColumns<'a> {
    /// The sentence id, forward-filled (`Sentence #`).
    pub sentence: &'a str,
    /// The word (`Word`).
    pub word: &'a str,
    /// The IOB tag (`Tag`).
    pub tag: &'a str,
    /// The part-of-speech tag (`POS`), read when given.
    pub pos: Option<&'a str>,
}

/// Reads the rows into `builder`: the sentence id is forward-filled; a token with a missing word, tag or (before
/// the first id) sentence id is dropped and counted. Token positions are table rows.
pub(crate) fn read_kaggle(
    source: TableSource<'_>,
    columns: KaggleColumns<'_>,
    builder: &mut SentenceBuilder,
) -> Result<()> {
    let required: [&[&str]; 3] = [&[columns.sentence], &[columns.word], &[columns.tag]];
    let optional_pos: Vec<&str> = columns.pos.into_iter().collect();
    let mut current: Option<usize> = None;
    for_each_row(source, Columns { required: &required, optional: &optional_pos }, |row, cells| {
        builder.tokens_read += 1;
        let cell = |i: usize| cells.get(i).and_then(|c| c.as_deref());
        if let Some(key) = cell(0) {
            current = Some(builder.sentence(key));
        }
        let reason = match (current, cell(1), cell(2)) {
            (Some(sentence), Some(_), Some(tag)) => {
                let tag = builder.intern(tag.trim());
                let pos = cell(3).map(str::to_owned);
                let word = cells.get_mut(1).and_then(Option::take).unwrap_or_default();
                builder.push_interned(sentence, word.into_owned(), tag, pos, row);
                return Ok(());
            }
            (_, None, _) => columns.word,
            (_, _, None) => columns.tag,
            (None, _, _) => columns.sentence,
        };
        builder.dropped_tokens.add(DropReason::Missing(reason.to_owned()));
        Ok(())
    })?;
    Ok(())
}
