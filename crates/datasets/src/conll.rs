//! CoNLL-style token-per-line text.
//!
//! One token a line, the tag in the last column: `token<TAB>tag` (WNUT-16), or whitespace
//! separated columns (`EU NNP B-NP B-ORG`, CoNLL-2003) when the line has no tab. A line that is
//! empty or holds only whitespace (WNUT's lone tab) ends a sentence; `-DOCSTART-` lines are
//! skipped. Lines may end in CRLF.

use std::path::Path;

use crate::error::{DatasetError, Location, Result};
use crate::sentences::SentenceBuilder;

/// Splits a non-blank line into (token, tag, middle columns).
fn split_line(line: &str) -> Option<(&str, &str, Option<&str>)> {
    let (token, tag, middle) = if line.contains('\t') {
        let mut fields = line.split('\t');
        let token = fields.next()?;
        let rest: Vec<&str> = fields.collect();
        let tag = rest.last()?.trim();
        let middle = if rest.len() > 1 { rest.first().copied() } else { None };
        (token, tag, middle)
    } else {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            return None;
        }
        let middle = if fields.len() > 2 { fields.get(1).copied() } else { None };
        (*fields.first()?, *fields.last()?, middle)
    };
    if token.is_empty() || tag.is_empty() {
        return None;
    }
    Some((token, tag, middle))
}

/// Parses CoNLL text into `builder`; sentence ids are `line N` (the first token's line), token positions lines.
pub(crate) fn parse_conll(path: &Path, text: &str, builder: &mut SentenceBuilder) -> Result<()> {
    let mut current: Option<usize> = None;
    for (index, line) in text.split('\n').enumerate() {
        let number = index as u64 + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            current = None;
            continue;
        }
        if line.starts_with("-DOCSTART-") {
            current = None;
            continue;
        }
        let Some((token, tag, middle)) = split_line(line) else {
            let shown: String = line.chars().take(60).collect();
            return Err(DatasetError::Conll {
                location: Location::file(path).with_line(number),
                message: format!("expected `token<TAB>tag`, found {shown:?}"),
            });
        };
        let sentence = match current {
            Some(s) => s,
            None => {
                let s = builder.new_sentence(format!("line {number}"));
                current = Some(s);
                s
            }
        };
        builder.tokens_read += 1;
        builder.push(sentence, token, tag, middle, number);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_line;

    #[test]
    fn splits_tab_and_space_layouts() {
        assert_eq!(split_line("@paul\tB-person"), Some(("@paul", "B-person", None)));
        assert_eq!(split_line("EU NNP B-NP B-ORG"), Some(("EU", "B-ORG", Some("NNP"))));
        assert_eq!(split_line("lonely"), None);
        assert_eq!(split_line("word\t"), None);
    }
}
