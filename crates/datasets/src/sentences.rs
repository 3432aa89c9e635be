//! Sentences of NER data as every reader (Kaggle table, CoNLL, JSON lines) builds them: tokens grouped into
//! sentences, IOB1 tags repaired to IOB2, tags resolved against the label set.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Location, Result};
use crate::labels::{entity_type, NerLabels, UnknownLabels};
use crate::report::{DropReason, DropReport};

/// One sentence: its words and their label ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NerSentence {
    /// The sentence id (`Sentence: 12` in the Kaggle layout, `line N` for CoNLL and JSON-lines input).
    pub id: String,
    /// The words.
    pub words: Vec<String>,
    /// The label id of each word (see [`crate::NerData::labels`]).
    pub tags: Vec<u32>,
    /// Part-of-speech tags, when asked for and present.
    pub pos: Option<Vec<String>>,
}

/// What a finished [`SentenceBuilder`] holds.
pub(crate) struct Grouped {
    pub sentences: Vec<NerSentence>,
    pub labels: NerLabels,
    pub tokens_read: u64,
    pub dropped_tokens: DropReport,
    pub dropped_sentences: DropReport,
    pub iob1_tags_converted: u64,
}

/// A sentence being collected, tags still as interned strings.
struct RawSentence {
    id: String,
    words: Vec<String>,
    tags: Vec<u32>,
    pos: Option<Vec<String>>,
    /// The row or line of each token, kept only when unknown tags are errors (to name where they are).
    positions: Option<Vec<u64>>,
}

/// Groups tokens into sentences (by sentence key, in order of first appearance, as pandas' `groupby` does but
/// without sorting the keys; or one sentence after another) and interns the tags.
pub(crate) struct SentenceBuilder {
    sentences: Vec<RawSentence>,
    by_key: HashMap<String, usize>,
    tag_names: Vec<String>,
    tag_ids: HashMap<String, u32>,
    keep_pos: bool,
    track_positions: bool,
    /// Tokens read (kept and dropped).
    pub tokens_read: u64,
    /// Tokens dropped before grouping.
    pub dropped_tokens: DropReport,
    /// Sentences dropped while reading (an empty JSON-lines sentence); [`finish`](Self::finish) adds the ones with
    /// unknown tags.
    pub dropped_sentences: DropReport,
}

impl SentenceBuilder {
    /// A builder; `track_positions` keeps each token's row or line, so that an unknown tag can be reported where
    /// it is (set it when unknown tags are errors).
    pub(crate) fn new(keep_pos: bool, track_positions: bool) -> Self {
        Self {
            sentences: Vec::new(),
            by_key: HashMap::new(),
            tag_names: Vec::new(),
            tag_ids: HashMap::new(),
            keep_pos,
            track_positions,
            tokens_read: 0,
            dropped_tokens: DropReport::new("tokens"),
            dropped_sentences: DropReport::new("sentences"),
        }
    }

    /// The id of a tag string.
    pub(crate) fn intern(&mut self, tag: &str) -> u32 {
        if let Some(&id) = self.tag_ids.get(tag) {
            return id;
        }
        let id = u32::try_from(self.tag_names.len()).unwrap_or(u32::MAX);
        self.tag_names.push(tag.to_owned());
        self.tag_ids.insert(tag.to_owned(), id);
        id
    }

    fn raw(&self, id: String) -> RawSentence {
        RawSentence {
            id,
            words: Vec::new(),
            tags: Vec::new(),
            pos: self.keep_pos.then(Vec::new),
            positions: self.track_positions.then(Vec::new),
        }
    }

    /// Index of the sentence with this key, created if new (Kaggle layout: a later row with the same key joins it).
    pub(crate) fn sentence(&mut self, key: &str) -> usize {
        if let Some(&i) = self.by_key.get(key) {
            return i;
        }
        let i = self.sentences.len();
        let raw = self.raw(key.to_owned());
        self.sentences.push(raw);
        self.by_key.insert(key.to_owned(), i);
        i
    }

    /// Starts a sentence that no later key can join (CoNLL and JSON-lines input).
    pub(crate) fn new_sentence(&mut self, id: String) -> usize {
        let i = self.sentences.len();
        let raw = self.raw(id);
        self.sentences.push(raw);
        i
    }

    /// Adds a token with its tag (trimmed) to a sentence; `position` is its row or line.
    pub(crate) fn push(&mut self, sentence: usize, word: &str, tag: &str, pos: Option<&str>, position: u64) {
        let tag = self.intern(tag.trim());
        self.push_interned(sentence, word.to_owned(), tag, pos.map(str::to_owned), position);
    }

    /// Adds a token whose tag is already interned.
    pub(crate) fn push_interned(
        &mut self,
        sentence: usize,
        word: String,
        tag: u32,
        pos: Option<String>,
        position: u64,
    ) {
        if let Some(s) = self.sentences.get_mut(sentence) {
            s.words.push(word);
            s.tags.push(tag);
            if let Some(p) = s.pos.as_mut() {
                p.push(pos.unwrap_or_default());
            }
            if let Some(p) = s.positions.as_mut() {
                p.push(position);
            }
        }
    }

    fn name(&self, id: u32) -> &str {
        self.tag_names.get(id as usize).map(String::as_str).unwrap_or_default()
    }

    /// Rewrites IOB1 tags as IOB2: an `I-X` that starts an entity (first in the sentence, after `O`, or after a tag
    /// of another type) becomes `B-X`. Returns how many tags changed.
    fn iob1_to_iob2(&mut self, tags: &mut [u32]) -> u64 {
        let mut converted = 0;
        for i in 0..tags.len() {
            let Some(&id) = tags.get(i) else { continue };
            let Some(kind) = self.name(id).strip_prefix("I-").filter(|kind| !kind.is_empty()) else { continue };
            let previous = i.checked_sub(1).and_then(|p| tags.get(p)).and_then(|&p| entity_type(self.name(p)));
            if previous != Some(kind) {
                let begin = format!("B-{kind}");
                if let Some(tag) = tags.get_mut(i) {
                    *tag = self.intern(&begin);
                }
                converted += 1;
            }
        }
        converted
    }

    /// Repairs IOB1 tags, resolves the tags against the label set (given, or derived from the tags seen), and
    /// drops (and counts) sentences with unknown tags, or fails on them as `unknown` says. `locate` turns a token's
    /// row or line into a location for errors.
    pub(crate) fn finish(
        mut self,
        labels: Option<NerLabels>,
        unknown: &UnknownLabels,
        locate: impl Fn(u64) -> Location,
    ) -> Result<Grouped> {
        let mut raws = std::mem::take(&mut self.sentences);
        let mut iob1_tags_converted = 0;
        // The tags as the file has them, to name an unknown one as the user wrote it.
        let mut originals: Vec<Option<Vec<u32>>> = Vec::with_capacity(raws.len());
        for raw in &mut raws {
            originals.push(self.track_positions.then(|| raw.tags.clone()));
            iob1_tags_converted += self.iob1_to_iob2(&mut raw.tags);
        }
        let labels = labels.unwrap_or_else(|| NerLabels::derive(self.tag_names.iter().map(String::as_str)));
        let resolved: Vec<Option<u32>> = self.tag_names.iter().map(|t| labels.id(t)).collect();
        let resolve = |t: u32| resolved.get(t as usize).copied().flatten();
        let mut dropped_sentences = std::mem::take(&mut self.dropped_sentences);
        let mut sentences = Vec::with_capacity(raws.len());
        for (raw, original) in raws.into_iter().zip(originals) {
            if raw.words.is_empty() {
                // Its tokens were all dropped, and counted, by the reader.
                continue;
            }
            if let Some(tags) = raw.tags.iter().map(|&t| resolve(t)).collect::<Option<Vec<u32>>>() {
                sentences.push(NerSentence { id: raw.id, words: raw.words, tags, pos: raw.pos });
                continue;
            }
            for (i, &t) in raw.tags.iter().enumerate() {
                if resolve(t).is_some() || unknown.drops(self.name(t)) {
                    continue;
                }
                let written = original.as_ref().and_then(|o| o.get(i)).map_or(t, |&o| o);
                let position = raw.positions.as_ref().and_then(|p| p.get(i)).copied().unwrap_or(0);
                let mut label = self.name(written).to_owned();
                if written != t {
                    label = format!("{label} (read as {})", self.name(t));
                }
                return Err(DatasetError::UnknownLabel {
                    location: locate(position),
                    label,
                    known: labels.tags().to_vec(),
                });
            }
            dropped_sentences.add(DropReason::UnknownTag);
            for &t in &raw.tags {
                if resolve(t).is_none() {
                    dropped_sentences.note_value(self.name(t));
                }
            }
        }
        Ok(Grouped {
            sentences,
            labels,
            tokens_read: self.tokens_read,
            dropped_tokens: self.dropped_tokens,
            dropped_sentences,
            iob1_tags_converted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(tags: &[&str]) -> (Vec<String>, u64) {
        let mut builder = SentenceBuilder::new(false, false);
        let mut ids: Vec<u32> = tags.iter().map(|t| builder.intern(t)).collect();
        let converted = builder.iob1_to_iob2(&mut ids);
        (ids.iter().map(|&t| builder.name(t).to_owned()).collect(), converted)
    }

    #[test]
    fn iob1_inside_tags_that_start_an_entity_become_begin_tags() {
        assert_eq!(
            convert(&["I-PER", "I-PER", "O", "I-LOC"]),
            (vec!["B-PER".into(), "I-PER".into(), "O".into(), "B-LOC".into()], 2)
        );
        // After another type, and IOB1's own B- between two entities of one type.
        assert_eq!(
            convert(&["I-ORG", "I-LOC", "B-LOC", "I-LOC"]),
            (vec!["B-ORG".into(), "B-LOC".into(), "B-LOC".into(), "I-LOC".into()], 2)
        );
        // IOB2 is left alone; so are tags that are not IOB.
        assert_eq!(
            convert(&["B-PER", "I-PER", "O", "X", "I-"]),
            (vec!["B-PER".into(), "I-PER".into(), "O".into(), "X".into(), "I-".into()], 0)
        );
    }

    #[test]
    fn strict_finish_names_the_tag_as_written_and_its_line() {
        let mut builder = SentenceBuilder::new(false, true);
        let s = builder.new_sentence("line 1".into());
        builder.push(s, "a", "O", None, 1);
        builder.push(s, "b", "I-MISC", None, 2);
        let labels = NerLabels::new(&["O", "B-PER", "I-PER"]).ok();
        let err = builder
            .finish(labels, &UnknownLabels::Error, |n| Location::file("f.conll".as_ref()).with_line(n))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("f.conll, line 2: label \"I-MISC (read as B-MISC)\" is not in the training label set [\"O\", \"B-PER\", \"I-PER\"]")
        );
    }
}
