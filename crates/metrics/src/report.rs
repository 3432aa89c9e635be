//! Text tables laid out exactly like scikit-learn's and seqeval's
//! `classification_report` (Python `str.format` right-aligned columns).

/// Name of the widest fixed row heading; the first column is never narrower.
const LONGEST_AVERAGE_HEADING: &str = "weighted avg";

/// Builds a report table row by row.
pub(crate) struct ReportTable {
    width: usize,
    digits: usize,
    text: String,
}

impl ReportTable {
    /// Starts a table whose first column fits every name in `row_names`
    /// (`max(len(name), len("weighted avg"), digits)`, lengths in characters).
    pub(crate) fn new<'a>(row_names: impl IntoIterator<Item = &'a str>, digits: usize) -> Self {
        let name_width = row_names.into_iter().map(|name| name.chars().count()).max().unwrap_or(0);
        let width = name_width.max(LONGEST_AVERAGE_HEADING.chars().count()).max(digits);
        let mut text = format!("{:>width$} ", "");
        for header in ["precision", "recall", "f1-score", "support"] {
            text.push_str(&format!(" {header:>9}"));
        }
        text.push_str("\n\n");
        ReportTable { width, digits, text }
    }

    /// Appends `name  precision  recall  f1  support` and a newline; `support`
    /// is pre-rendered (see [`render_support`]).
    pub(crate) fn row(&mut self, name: &str, precision: f64, recall: f64, f1: f64, support: &str) {
        let (width, digits) = (self.width, self.digits);
        self.text.push_str(&format!(
            "{name:>width$}  {precision:>9.digits$} {recall:>9.digits$} {f1:>9.digits$} {support:>9}\n"
        ));
    }

    /// Appends scikit-learn's accuracy row: blank precision and recall columns.
    pub(crate) fn accuracy_row(&mut self, accuracy: f64, support: &str) {
        let (width, digits) = (self.width, self.digits);
        self.text
            .push_str(&format!("{:>width$}  {:>9} {:>9} {accuracy:>9.digits$} {support:>9}\n", "accuracy", "", ""));
    }

    /// Appends an empty line.
    pub(crate) fn blank_line(&mut self) {
        self.text.push('\n');
    }

    /// The finished text.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// Renders a support count as Python prints it: an integer, or `"13.0"` when
/// scikit-learn holds the counts as floats (it does when there is no true
/// positive at all: `multilabel_confusion_matrix` then starts from `np.zeros`).
pub(crate) fn render_support(support: usize, as_float: bool) -> String {
    if as_float {
        format!("{support}.0")
    } else {
        support.to_string()
    }
}
