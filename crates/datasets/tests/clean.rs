//! Golden cases for the notebook's `clean_text`.
//!
//! Every expected value below was produced by the Python reference (Python 3.11.7,
//! beautifulsoup4 4.15.0): `BeautifulSoup(text, "html.parser").get_text()` for the middle
//! column, and the notebook's `clean_text(text)` for the last one. The full check against all
//! 50,000 IMDB reviews is `scripts/clean_reference.py` + `examples/clean_compare.rs`.

use datasets::{clean_text, html_to_text};
use proptest::prelude::*;

/// (input, Beautiful Soup `get_text()`, notebook `clean_text`).
const GOLDEN: &[(&str, &str, &str)] = &[
    ("This was good.<br /><br />The end.", "This was good.The end.", "This was good.The end."),
    (
        "Tom &amp; Jerry &lt;3 &quot;classic&quot; &nbsp;fun&#39;s",
        "Tom & Jerry <3 \"classic\" \u{a0}fun's",
        "Tom Jerry 3 classic fun's",
    ),
    ("I give it <3 stars, < 10 for sure", "I give it <3 stars, < 10 for sure", "I give it 3 stars, 10 for sure"),
    ("Rated 7/10\u{85}Great\u{85}film", "Rated 7/10\u{85}Great\u{85}film", "Rated 710 Great film"),
    (
        "<i>Italic</i> and <b>bold</b>, <a href=\"http://x.com\">link</a>!",
        "Italic and bold, link!",
        "Italic and bold, link!",
    ),
    (
        "Unknown &foo; entity &bar and &#x27;hex&#x27;",
        "Unknown &foo entity &bar and 'hex'",
        "Unknown foo entity bar and 'hex'",
    ),
    ("Broken &# stuff; then <br />tag text", "Broken &# stuff; then tag text", "Broken stuff then tag text"),
    ("Unclosed <grin at the end", "Unclosed <grin at the end", "Unclosed grin at the end"),
    ("<!-- hidden comment -->visible<script>var x = 1;</script> after", "visible after", "visible after"),
    (
        "caf\u{e9} na\u{ef}ve \u{2014} \u{201c}quoted\u{201d} \u{2019}apostrophe\u{2019}",
        "caf\u{e9} na\u{ef}ve \u{2014} \u{201c}quoted\u{201d} \u{2019}apostrophe\u{2019}",
        "caf nave quoted apostrophe",
    ),
    (
        "  lots \t of \n\n whitespace\u{a0}and\u{2003}em  ",
        "  lots \t of \n\n whitespace\u{a0}and\u{2003}em  ",
        "lots of whitespace and em",
    ),
    ("<SPOILER>twist</SPOILER> ending", "twist ending", "twist ending"),
    ("a<![CDATA[ in cdata ]]>b", "a in cdata b", "a in cdata b"),
    ("1 &lt 2 &gt; 0, x&amp", "1 < 2 > 0, x&amp", "1 2 0, xamp"),
    ("<p>para<p>two</p></br>three", "paratwothree", "paratwothree"),
    ("Q&A session: A&B", "Q&A session: AB", "QA session AB"),
    ("<style>p {color: red}</style>shown", "shown", "shown"),
    (
        "&#133; ellipsis &#150; dash &#8217;quote",
        "\u{2026} ellipsis \u{2013} dash \u{2019}quote",
        "ellipsis dash quote",
    ),
];

#[test]
fn html_text_matches_beautiful_soup() {
    for (input, text, _) in GOLDEN {
        assert_eq!(html_to_text(input).as_deref(), Ok(*text), "input {input:?}");
    }
}

#[test]
fn clean_text_matches_the_notebook() {
    for (input, _, cleaned) in GOLDEN {
        assert_eq!(clean_text(input), *cleaned, "input {input:?}");
    }
}

#[test]
fn rejected_markup_is_an_error_and_cleaned_as_plain_text() {
    // Python: ParserRejectedMarkup ("expected name token") for `<![` without a keyword.
    assert!(html_to_text("a <![ b").is_err());
    assert!(html_to_text("<![foo[ x ]]>").is_err());
    assert_eq!(clean_text("a <![ b"), "a ! b");
}

/// Markup fragments the property test strings together.
const FRAGMENTS: &[&str] = &[
    "<",
    ">",
    "&",
    "#",
    ";",
    "/",
    "!",
    "-",
    "x",
    "a",
    "1",
    " ",
    "\n",
    "\u{85}",
    "\u{e9}",
    "<br />",
    "&amp;",
    "&#39",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<![",
    "<script>",
    "</script>",
    "<a href='",
    "<?",
    "</",
    "<!doctype x>",
    "&nbsp",
    "\u{1c}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Any input: no panic, and the output holds only the characters the notebook keeps,
    /// single-spaced and stripped.
    #[test]
    fn clean_text_output_shape(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40)) {
        let input = parts.concat();
        let out = clean_text(&input);
        prop_assert!(out.chars().all(|c| c.is_ascii_alphanumeric() || " .,!?'-".contains(c)));
        prop_assert!(!out.starts_with(' ') && !out.ends_with(' ') && !out.contains("  "));
    }

    /// Arbitrary Unicode never panics the HTML parser.
    #[test]
    fn html_to_text_never_panics(input in "\\PC{0,64}") {
        let _ = html_to_text(&input);
    }
}
