//! Counting what a loader dropped, and why.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a row, token or sentence was left out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// The named column is missing or empty in that row.
    Missing(String),
    /// The label is not one of the configured labels.
    UnknownLabel,
    /// The sentence holds a tag outside the label set.
    UnknownTag,
    /// The text is empty once cleaned (e.g. markup only): it would train as `[CLS] [SEP]`.
    EmptyAfterCleaning,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(column) => write!(f, "missing {column}"),
            Self::UnknownLabel => f.write_str("unknown label"),
            Self::UnknownTag => f.write_str("unknown tag"),
            Self::EmptyAfterCleaning => f.write_str("empty after cleaning"),
        }
    }
}

/// How many items (rows, tokens or sentences) were dropped, by reason, with the offending values.
///
/// ```
/// use datasets::{DropReason, DropReport};
/// let mut report = DropReport::new("rows");
/// report.add(DropReason::Missing("sentiment".into()));
/// report.add(DropReason::Missing("sentiment".into()));
/// report.add_value(DropReason::UnknownLabel, "plot");
/// assert_eq!(report.to_string(), "dropped 3 rows: 2 missing sentiment, 1 unknown label (plot: 1)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DropReport {
    /// What is counted ("rows", "tokens", "sentences").
    pub unit: String,
    /// Items dropped, by reason.
    pub counts: BTreeMap<DropReason, u64>,
    /// For unknown labels and tags: how often each offending value was seen.
    pub values: BTreeMap<String, u64>,
}

/// How many offending values a report's `Display` names before "...".
const SHOWN_VALUES: usize = 5;

impl DropReport {
    /// An empty report counting `unit`.
    pub fn new(unit: &str) -> Self {
        Self { unit: unit.to_owned(), ..Self::default() }
    }

    /// Counts one dropped item.
    pub fn add(&mut self, reason: DropReason) {
        *self.counts.entry(reason).or_insert(0) += 1;
    }

    /// Counts `count` dropped items for `reason` (nothing when `count` is 0).
    pub fn add_many(&mut self, reason: DropReason, count: u64) {
        if count > 0 {
            *self.counts.entry(reason).or_insert(0) += count;
        }
    }

    /// Adds another report's counts and values to this one (the reports of several files).
    pub fn merge(&mut self, other: &DropReport) {
        for (reason, count) in &other.counts {
            self.add_many(reason.clone(), *count);
        }
        for (value, count) in &other.values {
            *self.values.entry(value.clone()).or_insert(0) += count;
        }
    }

    /// The offending values recorded (unknown labels or tags), in sorted order.
    pub fn offending_values(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Counts one dropped item and the value that caused it.
    pub fn add_value(&mut self, reason: DropReason, value: &str) {
        self.add(reason);
        *self.values.entry(value.to_owned()).or_insert(0) += 1;
    }

    /// Records an offending value without counting another dropped item
    /// (a sentence dropped for several unknown tags).
    pub fn note_value(&mut self, value: &str) {
        *self.values.entry(value.to_owned()).or_insert(0) += 1;
    }

    /// Total items dropped.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Items dropped for `reason`.
    pub fn count(&self, reason: &DropReason) -> u64 {
        self.counts.get(reason).copied().unwrap_or(0)
    }

    /// Whether nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

impl fmt::Display for DropReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dropped {} {}", self.total(), self.unit)?;
        let mut first = true;
        for (reason, count) in &self.counts {
            f.write_str(if first { ": " } else { ", " })?;
            first = false;
            write!(f, "{count} {reason}")?;
        }
        if !self.values.is_empty() {
            let mut by_count: Vec<(&String, &u64)> = self.values.iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            f.write_str(" (")?;
            for (i, (value, count)) in by_count.iter().take(SHOWN_VALUES).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{value}: {count}")?;
            }
            if by_count.len() > SHOWN_VALUES {
                write!(f, ", ... {} more", by_count.len() - SHOWN_VALUES)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}
