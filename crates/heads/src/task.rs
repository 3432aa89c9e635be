//! The tasks a multi-task model can learn, each with its own head.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Name of the classification head's variables (`classification_head.weight`, `classification_head.bias`).
pub const CLASSIFICATION_HEAD: &str = "classification_head";
/// Name of the NER head's variables (`ner_head.weight`, `ner_head.bias`).
pub const NER_HEAD: &str = "ner_head";

/// One of the tasks, each with its own head. A model holds the heads of the tasks it has labels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Sentence classification (`classification_head.*`).
    Classification,
    /// Named-entity recognition, a class per token (`ner_head.*`).
    Ner,
}

impl Task {
    /// Every task, in the order runs train and report them.
    pub const ALL: [Task; 2] = [Task::Classification, Task::Ner];
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "classification or ner";

    /// The name of the task's head, the prefix of its variables.
    pub fn head_name(self) -> &'static str {
        match self {
            Self::Classification => CLASSIFICATION_HEAD,
            Self::Ner => NER_HEAD,
        }
    }

    /// The task whose head holds the variable `name`; `None` for the encoder's variables.
    pub fn of_variable(name: &str) -> Option<Task> {
        let module = name.split_once('.').map(|(module, _)| module)?;
        Self::ALL.into_iter().find(|task| task.head_name() == module)
    }

    /// The position of the task in [`Task::ALL`], for per-task arrays.
    pub fn index(self) -> usize {
        match self {
            Self::Classification => 0,
            Self::Ner => 1,
        }
    }

    /// How people name the task in text (`classification`, `NER`).
    pub fn title(self) -> &'static str {
        match self {
            Self::Classification => "classification",
            Self::Ner => "NER",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Classification => "classification",
            Self::Ner => "ner",
        })
    }
}

impl FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|task| task.to_string() == s)
            .ok_or_else(|| format!("unknown task `{s}`: expected {}", Self::NAMES))
    }
}

/// One value per task, indexed by [`Task`]: the tasks' data, features, scores or weights, looped over in
/// [`Task::ALL`] order, so that code over tasks never spells them out one by one. Serialises as a map from the task's
/// name to its value, absent tasks left out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerTask<T>([Option<T>; 2]);

impl<T: Serialize> Serialize for PerTask<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.tasks().len()))?;
        for (task, value) in self.iter() {
            map.serialize_entry(&task, value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerTask<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<Task, T>::deserialize(deserializer)?;
        Ok(map.into_iter().collect())
    }
}

impl<T> Default for PerTask<T> {
    fn default() -> Self {
        Self([None, None])
    }
}

impl<T> PerTask<T> {
    /// No task has a value.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `task`.
    pub fn get(&self, task: Task) -> Option<&T> {
        self.0[task.index()].as_ref()
    }

    /// The value of `task`, mutably.
    pub fn get_mut(&mut self, task: Task) -> Option<&mut T> {
        self.0[task.index()].as_mut()
    }

    /// Sets the value of `task`, returning the previous one.
    pub fn insert(&mut self, task: Task, value: T) -> Option<T> {
        self.0[task.index()].replace(value)
    }

    /// The same with `task` set.
    pub fn with(mut self, task: Task, value: T) -> Self {
        self.insert(task, value);
        self
    }

    /// Whether `task` has a value.
    pub fn contains(&self, task: Task) -> bool {
        self.get(task).is_some()
    }

    /// The tasks with a value, in [`Task::ALL`] order.
    pub fn tasks(&self) -> Vec<Task> {
        Task::ALL.into_iter().filter(|&task| self.contains(task)).collect()
    }

    /// The tasks with their values, in [`Task::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Task, &T)> {
        Task::ALL.into_iter().filter_map(move |task| self.get(task).map(|value| (task, value)))
    }

    /// Whether no task has a value.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// Each value mapped by `f`.
    pub fn map<U>(&self, mut f: impl FnMut(Task, &T) -> U) -> PerTask<U> {
        let mut out = PerTask::new();
        for (task, value) in self.iter() {
            out.insert(task, f(task, value));
        }
        out
    }

    /// Each value mapped by a fallible `f`; the first error stops.
    pub fn try_map<U, E>(&self, mut f: impl FnMut(Task, &T) -> Result<U, E>) -> Result<PerTask<U>, E> {
        let mut out = PerTask::new();
        for (task, value) in self.iter() {
            out.insert(task, f(task, value)?);
        }
        Ok(out)
    }
}

impl<T> FromIterator<(Task, T)> for PerTask<T> {
    fn from_iter<I: IntoIterator<Item = (Task, T)>>(iter: I) -> Self {
        let mut out = Self::new();
        for (task, value) in iter {
            out.insert(task, value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_print_as_they_parse_and_name_their_heads() {
        for task in Task::ALL {
            assert_eq!(task.to_string().parse::<Task>(), Ok(task));
            assert_eq!(Task::of_variable(&format!("{}.weight", task.head_name())), Some(task));
            assert_eq!(Task::ALL[task.index()], task);
        }
        assert_eq!(Task::of_variable("encoder.layer.0.output.dense.weight"), None);
        assert!("pos".parse::<Task>().unwrap_err().contains(Task::NAMES));
    }

    #[test]
    fn per_task_values_iterate_in_task_order() {
        let values = PerTask::new().with(Task::Ner, 2).with(Task::Classification, 1);
        assert_eq!(values.iter().collect::<Vec<_>>(), [(Task::Classification, &1), (Task::Ner, &2)]);
        let only_ner: PerTask<i32> = [(Task::Ner, 5)].into_iter().collect();
        assert_eq!(only_ner.tasks(), [Task::Ner]);
        assert_eq!(only_ner.map(|_, v| v * 2).get(Task::Ner), Some(&10));
        assert!(PerTask::<i32>::new().is_empty());
        let json = serde_json::to_string(&only_ner).expect("json");
        assert_eq!(json, r#"{"ner":5}"#);
        assert_eq!(serde_json::from_str::<PerTask<i32>>(&json).expect("parses"), only_ner);
        assert!(serde_json::from_str::<PerTask<i32>>(r#"{"pos":1}"#).is_err());
    }
}
