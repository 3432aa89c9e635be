//! Text preparation that training data and inference share, with nothing else attached: the notebook's cleaning of
//! reviews (Beautiful Soup's `html.parser` text, then its two regular expressions), which sub-token starts each word,
//! and the overlapping windows a sequence longer than the model is read in.
//!
//! ```
//! assert_eq!(text_prep::clean_text("Loved it.<br /><br />10/10"), "Loved it.1010");
//! let starts: Vec<Option<u32>> = text_prep::word_starts(&[None, Some(0), Some(1), Some(1), None]).collect();
//! assert_eq!(starts, [None, Some(0), Some(1), None, None]);
//! ```

#![warn(missing_docs)]

mod clean;
mod html;
mod words;

pub use clean::{clean_text, normalize_chars};
pub use html::{html_to_text, is_py_whitespace, MarkupRejected};
pub use words::{case_types, default_stride, rows, windows, word_starts, Row, Window, WindowError};
