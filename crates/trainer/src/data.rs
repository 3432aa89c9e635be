//! The data a run works on: each task's prepared dataset with its train/validation/test split.

use datasets::PreparedDataset;
use heads::PerTask;
use serde::{Deserialize, Serialize};

/// Each task's data; a task may be absent (a run on one task).
///
/// ```
/// # fn data(classification: &datasets::PreparedDataset, ner: &datasets::PreparedDataset) {
/// use trainer::{Task, TaskData};
/// let both = TaskData::new().with(Task::Classification, classification).with(Task::Ner, ner);
/// let ner_only = TaskData::new().with(Task::Ner, ner);
/// assert_eq!(ner_only.tasks(), [Task::Ner]);
/// # }
/// ```
pub type TaskData<'a> = PerTask<&'a PreparedDataset>;

/// Whether every present task has validation examples (and at least one task is present).
pub fn has_validation(data: &TaskData<'_>) -> bool {
    !data.is_empty() && data.iter().all(|(_, d)| !d.validation().is_empty())
}

/// Which examples to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training examples.
    Train,
    /// The validation examples (held out of training).
    Validation,
    /// The test examples.
    Test,
}

impl Split {
    /// Every split, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// The example indices of this split of `data`.
    pub fn of(self, data: &PreparedDataset) -> &[usize] {
        match self {
            Self::Train => data.train(),
            Self::Validation => data.validation(),
            Self::Test => data.test(),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Train => "training",
            Self::Validation => "validation",
            Self::Test => "test",
        })
    }
}
