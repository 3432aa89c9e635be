//! The notebook's `clean_text`, reproduced exactly.
//!
//! ```python
//! def clean_text(text):
//!     text = BeautifulSoup(text, "html.parser").get_text()
//!     text = re.sub(r"[^a-zA-Z0-9\s.,!?'-]", "", text)
//!     text = re.sub(r"\s+", " ", text).strip()
//!     return text
//! ```

use crate::html::{html_to_text, is_py_whitespace};

/// Whether `c` survives `re.sub(r"[^a-zA-Z0-9\s.,!?'-]", "", text)` without being whitespace.
fn is_kept(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ',' | '!' | '?' | '\'' | '-')
}

/// Keeps ASCII letters, digits, `.,!?'-` and (Python) whitespace, turns every whitespace run
/// into one space, and strips both ends: the two `re.sub` calls and `.strip()` of `clean_text`.
pub fn normalize_chars(text: &str, out: &mut String) {
    out.clear();
    let mut pending_space = false;
    for c in text.chars() {
        if is_kept(c) {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else if is_py_whitespace(c) {
            pending_space = true;
        }
    }
}

/// The notebook's `clean_text`: HTML text extraction as Beautiful Soup's `html.parser` does it,
/// then only `[a-zA-Z0-9\s.,!?'-]` kept, whitespace runs collapsed to one space, ends stripped.
///
/// Where Python's parser rejects the markup (a malformed `<![` section, which makes the
/// notebook raise), the text is cleaned as it is, without HTML extraction.
///
/// ```
/// use text_prep::clean_text;
/// assert_eq!(clean_text("Great film.<br /><br />10/10 &amp; more"), "Great film.1010 more");
/// ```
pub fn clean_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    match html_to_text(text) {
        Ok(plain) => normalize_chars(&plain, &mut out),
        Err(rejected) => {
            tracing::debug!(%rejected, "markup rejected by the HTML parser; cleaning it as plain text");
            normalize_chars(text, &mut out);
        }
    }
    out
}
