//! The tag set of a token-classification (NER) task.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};

/// An ordered set of IOB tags; a tag's position is its label id.
///
/// ```
/// use datasets::NerLabels;
/// let labels = NerLabels::derive(["O", "B-per", "I-per", "B-geo", "O"]);
/// assert_eq!(labels.tags(), ["O", "B-geo", "I-geo", "B-per", "I-per"]);
/// assert_eq!(labels.id("B-per"), Some(3));
/// assert_eq!(labels.inside_of(3), Some(4));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct NerLabels {
    tags: Vec<String>,
    index: HashMap<String, u32>,
}

impl From<Vec<String>> for NerLabels {
    fn from(tags: Vec<String>) -> Self {
        Self::from_vec(tags)
    }
}

impl From<NerLabels> for Vec<String> {
    fn from(labels: NerLabels) -> Self {
        labels.tags
    }
}

impl NerLabels {
    /// A tag set in the given order (label id = position).
    pub fn new<S: AsRef<str>>(tags: &[S]) -> Result<Self> {
        if tags.is_empty() {
            return Err(DatasetError::InvalidLabels("no tags given".into()));
        }
        let tags: Vec<String> = tags.iter().map(|t| t.as_ref().to_owned()).collect();
        let labels = Self::from_vec(tags);
        if labels.index.len() != labels.tags.len() {
            return Err(DatasetError::InvalidLabels("a tag is given twice".into()));
        }
        Ok(labels)
    }

    fn from_vec(tags: Vec<String>) -> Self {
        let mut index = HashMap::with_capacity(tags.len());
        for (i, tag) in tags.iter().enumerate() {
            if let Ok(i) = u32::try_from(i) {
                index.entry(tag.clone()).or_insert(i);
            }
        }
        Self { tags, index }
    }

    /// The notebook's 17 GMB tags: `O`, then `B-`/`I-` for art, eve, geo, gpe, nat, org, per, tim.
    pub fn gmb() -> Self {
        Self::derive(["B-art", "B-eve", "B-geo", "B-gpe", "B-nat", "B-org", "B-per", "B-tim"])
    }

    /// Derives the tag set from the tags seen in the data: `O` first, then a `B-`/`I-` pair for
    /// every entity type (sorted by type). Tags that are neither `O` nor `B-x`/`I-x` are left
    /// out (their sentences are then dropped as unknown).
    pub fn derive<'a, I>(seen: I) -> Self
    where
        I: IntoIterator<Item = &'a str>,
    {
        let types: BTreeSet<&str> = seen.into_iter().filter_map(entity_type).collect();
        let mut tags = vec!["O".to_owned()];
        for t in types {
            tags.push(format!("B-{t}"));
            tags.push(format!("I-{t}"));
        }
        Self::from_vec(tags)
    }

    /// The label id of a tag.
    pub fn id(&self, tag: &str) -> Option<u32> {
        self.index.get(tag).copied()
    }

    /// The tag of a label id.
    pub fn tag(&self, id: u32) -> Option<&str> {
        usize::try_from(id).ok().and_then(|i| self.tags.get(i)).map(String::as_str)
    }

    /// The label a later sub-token of a word labelled `id` gets with `label_all_tokens`:
    /// `I-x` for `B-x` or `I-x`, `O` for `O`; `None` if that tag is not in the set.
    pub fn inside_of(&self, id: u32) -> Option<u32> {
        let tag = self.tag(id)?;
        match tag.split_once('-') {
            Some((_, entity)) if tag.starts_with("B-") || tag.starts_with("I-") => self.id(&format!("I-{entity}")),
            _ => Some(id),
        }
    }

    /// All tags, in label-id order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether the set is empty (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

/// What a loader does with a label (a class value or an NER tag) outside the label set.
///
/// ```
/// use datasets::UnknownLabels;
/// assert!(UnknownLabels::Drop.drops("plot"));
/// assert!(!UnknownLabels::Error.drops("plot"));
/// let strict = UnknownLabels::ErrorExcept(vec!["plot".into()]);
/// assert!(strict.drops("plot") && !strict.drops("neutral"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnknownLabels {
    /// Drop the row (classification) or sentence (NER) and count it in the drop report (the Rotten Tomatoes
    /// `plot` rows). The default.
    #[default]
    Drop,
    /// Fail with [`DatasetError::UnknownLabel`], naming the label, the file and the row or line.
    Error,
    /// Drop and count rows or sentences whose unknown labels are all among these values (the ones reading the
    /// training file dropped too); fail on any other label, as [`Error`](Self::Error) does. Validation and test files
    /// are read this way against the training file's labels.
    ErrorExcept(Vec<String>),
}

impl UnknownLabels {
    /// Whether an unknown label can be an error (anything but [`Drop`](Self::Drop)).
    pub fn is_strict(&self) -> bool {
        !matches!(self, Self::Drop)
    }

    /// Whether an unknown `label` is dropped and counted (`true`) or an error (`false`).
    pub fn drops(&self, label: &str) -> bool {
        match self {
            Self::Drop => true,
            Self::Error => false,
            Self::ErrorExcept(values) => values.iter().any(|v| v == label),
        }
    }
}

/// The entity type of an IOB2 tag (`B-x`/`I-x`), `None` for `O` and anything else.
pub(crate) fn entity_type(tag: &str) -> Option<&str> {
    let rest = tag.strip_prefix("B-").or_else(|| tag.strip_prefix("I-"))?;
    if rest.is_empty() {
        None
    } else {
        Some(rest)
    }
}
