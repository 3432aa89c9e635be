//! The text of an HTML fragment, exactly as `BeautifulSoup(text, "html.parser").get_text()` gives it.
//!
//! This is a port of CPython 3.11's `html.parser.HTMLParser` (with `convert_charrefs=False`, as
//! Beautiful Soup runs it), fed the whole text and then closed, plus the parts of Beautiful
//! Soup 4.15's tree builder that decide which strings `get_text()` returns:
//!
//! - text nodes are concatenated with no separator (`"good.<br /><br />The"` gives `"good.The"`);
//! - comments, doctypes, declarations, processing instructions, and the text inside `<script>`,
//!   `<style>`, `<template>`, `<rt>` and `<rp>` are left out; CDATA sections are kept;
//! - `&name;` and `&#n;` references are decoded with Beautiful Soup's tables; an unknown name
//!   stays as `&name` (its `;` is dropped), as Beautiful Soup does;
//! - a `<` that does not start a tag, and markup the parser gives up on, are text;
//! - a text node of ASCII whitespace only becomes one space, or one newline if it holds one.
//!
//! The regular expressions are the ones in `html/parser.py`, with `\s` spelled out as Python's
//! Unicode whitespace class, and run by a backtracking engine as Python's `re` does.

mod entities;

use std::sync::LazyLock;

use fancy_regex::Regex as FancyRegex;
use regex::Regex;

/// Python's `\s` for `str` patterns (the characters for which `str.isspace()` is true),
/// as the inside of a character class.
const WS: &str =
    r"\t\n\x0B\x0C\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";

/// Whether `c` is whitespace for Python (`str.isspace()`, and `\s` in `re`).
pub fn is_py_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\x0B'
            | '\x0C'
            | '\r'
            | '\x1C'..='\x1F'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// Python's `str.strip()` (no arguments).
fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_whitespace)
}

fn fancy(pattern: &str) -> FancyRegex {
    match FancyRegex::new(pattern) {
        Ok(re) => re,
        // The patterns are constants, covered by the tests: this cannot happen at run time.
        Err(e) => unreachable!("bad built-in pattern {pattern}: {e}"),
    }
}

fn plain(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(re) => re,
        Err(e) => unreachable!("bad built-in pattern {pattern}: {e}"),
    }
}

/// `locatestarttagend_tolerant`, anchored.
static LOCATE_STARTTAG_END: LazyLock<FancyRegex> = LazyLock::new(|| {
    fancy(&format!(
        r#"^<[a-zA-Z][^\t\n\r\x0C />\x00]*(?:[{WS}/]*(?:(?<=['"{WS}/])[^{WS}/>][^{WS}/=>]*(?:[{WS}]*=+[{WS}]*(?:'[^']*'|"[^"]*"|(?!['"])[^>{WS}]*)[{WS}]*)?(?:[{WS}]|/(?!>))*)*)?[{WS}]*"#
    ))
});

/// `tagfind_tolerant`, anchored.
static TAGFIND: LazyLock<FancyRegex> =
    LazyLock::new(|| fancy(&format!(r"^([a-zA-Z][^\t\n\r\x0C />\x00]*)(?:[{WS}]|/(?!>))*")));

/// `attrfind_tolerant` without its leading look-behind (checked by the caller), anchored.
static ATTRFIND: LazyLock<FancyRegex> = LazyLock::new(|| {
    fancy(&format!(
        r#"^([^{WS}/>][^{WS}/=>]*)([{WS}]*=+[{WS}]*('[^']*'|"[^"]*"|(?!['"])[^>{WS}]*))?(?:[{WS}]|/(?!>))*"#
    ))
});

/// `endtagfind`, anchored.
static ENDTAGFIND: LazyLock<Regex> = LazyLock::new(|| plain(&format!(r"^</[{WS}]*([a-zA-Z][-.a-zA-Z0-9:_]*)[{WS}]*>")));

/// `commentclose` (`--\s*>`).
static COMMENT_CLOSE: LazyLock<Regex> = LazyLock::new(|| plain(&format!(r"--[{WS}]*>")));

/// `_markedsectionclose` (`]\s*]\s*>`).
static MARKED_SECTION_CLOSE: LazyLock<Regex> = LazyLock::new(|| plain(&format!(r"\][{WS}]*\][{WS}]*>")));

/// `_msmarkedsectionclose` (`]\s*>`).
static MS_MARKED_SECTION_CLOSE: LazyLock<Regex> = LazyLock::new(|| plain(&format!(r"\][{WS}]*>")));

/// `_declname_match`, anchored.
static DECLNAME: LazyLock<Regex> = LazyLock::new(|| plain(&format!(r"^[a-zA-Z][-_.a-zA-Z0-9]*[{WS}]*")));

/// The end of a `<script>` or `<style>` element (`</\s*script\s*>`, case-insensitive).
static SCRIPT_END: LazyLock<Regex> = LazyLock::new(|| plain(&format!(r"(?i)</[{WS}]*script[{WS}]*>")));
static STYLE_END: LazyLock<Regex> = LazyLock::new(|| plain(&format!(r"(?i)</[{WS}]*style[{WS}]*>")));

/// Tags that Beautiful Soup closes as soon as they open (HTML void elements).
const EMPTY_ELEMENT_TAGS: [&str; 24] = [
    "area", "base", "basefont", "bgsound", "br", "col", "command", "embed", "frame", "hr", "image", "img", "input",
    "isindex", "keygen", "link", "menuitem", "meta", "nextid", "param", "source", "spacer", "track", "wbr",
];

/// Tags whose strings are not "main content" (left out of `get_text()`).
const STRING_CONTAINERS: [&str; 5] = ["rp", "rt", "script", "style", "template"];

/// Tags inside which whitespace-only strings are kept as they are.
const PRESERVE_WHITESPACE_TAGS: [&str; 2] = ["pre", "textarea"];

/// Markup that Python's `html.parser` refuses with an `AssertionError` (Beautiful Soup then
/// raises `ParserRejectedMarkup`): a `<![` marked section with a bad or unknown keyword.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("markup rejected by the HTML parser at byte {position}: {message}")]
pub struct MarkupRejected {
    /// Byte offset of the construct in the input.
    pub position: usize,
    /// What the parser objected to.
    pub message: String,
}

/// The kind of string a finished text node becomes in Beautiful Soup's tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StringKind {
    /// A `NavigableString`, or the type of the innermost string container.
    Text,
    /// A comment, doctype, declaration or processing instruction: left out.
    Hidden,
    /// A CDATA section: kept.
    CData,
}

/// The parts of Beautiful Soup's tree builder that decide what `get_text()` returns.
struct Soup {
    out: String,
    /// Start (in `out`) of the text node being collected, if `handle_data` was called since the last flush.
    chunk_start: Option<usize>,
    /// Open tags, innermost last.
    stack: Vec<String>,
    /// How many open tags are string containers.
    open_containers: usize,
    /// How many open tags preserve whitespace.
    open_preserve: usize,
    /// Void tags closed at once, whose explicit end tags are still to be ignored.
    already_closed_empty: Vec<String>,
}

impl Soup {
    fn new(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
            chunk_start: None,
            stack: Vec::new(),
            open_containers: 0,
            open_preserve: 0,
            already_closed_empty: Vec::new(),
        }
    }

    fn data(&mut self, s: &str) {
        if self.chunk_start.is_none() {
            self.chunk_start = Some(self.out.len());
        }
        self.out.push_str(s);
    }

    /// `BeautifulSoup.endData(containerClass)`.
    fn end_data(&mut self, kind: StringKind) {
        let Some(start) = self.chunk_start.take() else {
            return;
        };
        if self.open_preserve == 0 {
            let chunk = &self.out[start..];
            if chunk.bytes().all(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\x0C' | b'\r')) {
                let replacement = if chunk.contains('\n') { "\n" } else { " " };
                self.out.truncate(start);
                self.out.push_str(replacement);
            }
        }
        let keep = match kind {
            StringKind::Text => self.open_containers == 0,
            StringKind::CData => true,
            StringKind::Hidden => false,
        };
        if !keep {
            self.out.truncate(start);
        }
    }

    fn push_tag(&mut self, name: &str) {
        if STRING_CONTAINERS.contains(&name) {
            self.open_containers += 1;
        }
        if PRESERVE_WHITESPACE_TAGS.contains(&name) {
            self.open_preserve += 1;
        }
        self.stack.push(name.to_owned());
    }

    fn pop_tag(&mut self) {
        if let Some(name) = self.stack.pop() {
            if STRING_CONTAINERS.contains(&name.as_str()) {
                self.open_containers -= 1;
            }
            if PRESERVE_WHITESPACE_TAGS.contains(&name.as_str()) {
                self.open_preserve -= 1;
            }
        }
    }

    /// `BeautifulSoup.handle_endtag`: flush, then pop up to and including the innermost `name`.
    fn soup_endtag(&mut self, name: &str) {
        self.end_data(StringKind::Text);
        if let Some(pos) = self.stack.iter().rposition(|t| t == name) {
            while self.stack.len() > pos {
                self.pop_tag();
            }
        }
    }

    /// `BeautifulSoupHTMLParser.handle_starttag`.
    fn starttag(&mut self, name: &str, handle_empty_element: bool) {
        self.end_data(StringKind::Text);
        self.push_tag(name);
        if handle_empty_element && EMPTY_ELEMENT_TAGS.contains(&name) {
            self.endtag(name, false);
            self.already_closed_empty.push(name.to_owned());
        }
    }

    /// `BeautifulSoupHTMLParser.handle_endtag`.
    fn endtag(&mut self, name: &str, check_already_closed: bool) {
        if check_already_closed {
            if let Some(pos) = self.already_closed_empty.iter().position(|t| t == name) {
                self.already_closed_empty.remove(pos);
                return;
            }
        }
        self.soup_endtag(name);
    }

    fn startendtag(&mut self, name: &str) {
        self.starttag(name, false);
        self.endtag(name, false);
    }

    /// A comment, doctype, declaration, processing instruction or CDATA section.
    fn special(&mut self, data: &str, kind: StringKind) {
        self.end_data(StringKind::Text);
        self.data(data);
        self.end_data(kind);
    }

    fn charref(&mut self, name: &str) {
        let (digits, radix) = match name.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16),
            None => (name, 10),
        };
        // Python's int() has no upper bound; anything past u32 is out of Unicode's range anyway.
        let value = u64::from_str_radix(digits, radix).unwrap_or(u64::MAX);
        let c = numeric_character_reference(value);
        let mut buf = [0u8; 4];
        self.data(c.encode_utf8(&mut buf));
        // The trailing `handle_data("")` for the empty extra data changes nothing.
    }

    fn entityref(&mut self, name: &str) {
        match entities::NAMED.binary_search_by(|(n, _)| (*n).cmp(name)) {
            Ok(idx) => {
                let value = entities::NAMED.get(idx).map_or("", |(_, v)| *v);
                self.data(value);
            }
            Err(_) => {
                self.data("&");
                self.data(name);
            }
        }
    }
}

/// `UnicodeDammit.numeric_character_reference`.
fn numeric_character_reference(value: u64) -> char {
    const REPLACEMENT: char = '\u{FFFD}';
    if value == 0 || value > 0x10FFFF || (0xD800..=0xDFFF).contains(&value) {
        return REPLACEMENT;
    }
    if (0x80..=0x9F).contains(&value) {
        let remapped = usize::try_from(value - 0x80).ok().and_then(|i| entities::C1_REMAP.get(i).copied().flatten());
        if let Some(c) = remapped {
            return c;
        }
    }
    u32::try_from(value).ok().and_then(char::from_u32).unwrap_or(REPLACEMENT)
}

/// Outcome of a `parse_*` step: the new position, or "incomplete" (Python's `-1`).
type Step = Option<usize>;

/// `html.parser.HTMLParser`, driving a [`Soup`].
struct Parser<'a> {
    raw: &'a str,
    cdata_elem: Option<&'static str>,
    soup: Soup,
}

impl<'a> Parser<'a> {
    fn new(raw: &'a str) -> Self {
        Self { raw, cdata_elem: None, soup: Soup::new(raw.len()) }
    }

    fn starts_with(&self, i: usize, prefix: &str) -> bool {
        self.raw.get(i..).is_some_and(|s| s.starts_with(prefix))
    }

    fn find_from(&self, i: usize, needle: char) -> Option<usize> {
        self.raw.get(i..)?.find(needle).map(|p| p + i)
    }

    /// `goahead(end)` over `raw[start..]`; returns where the unprocessed rest begins.
    fn goahead(&mut self, start: usize, end: bool) -> Result<usize, MarkupRejected> {
        let raw = self.raw;
        let bytes = raw.as_bytes();
        let n = raw.len();
        let mut i = start;
        while i < n {
            let j = match self.cdata_elem {
                Some(elem) => {
                    let re: &Regex = if elem == "script" { &SCRIPT_END } else { &STYLE_END };
                    match re.find_at(raw, i) {
                        Some(m) => m.start(),
                        None => break,
                    }
                }
                None => bytes.get(i..).and_then(|b| memchr::memchr2(b'<', b'&', b)).map_or(n, |p| p + i),
            };
            if i < j {
                self.soup.data(&raw[i..j]);
            }
            i = j;
            if i == n {
                break;
            }
            if bytes[i] == b'<' {
                let step = if bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
                    self.parse_starttag(i)
                } else if self.starts_with(i, "</") {
                    self.parse_endtag(i)
                } else if self.starts_with(i, "<!--") {
                    self.parse_comment(i)
                } else if self.starts_with(i, "<?") {
                    self.parse_pi(i)
                } else if self.starts_with(i, "<!") {
                    self.parse_html_declaration(i)?
                } else if i + 1 < n {
                    self.soup.data("<");
                    Some(i + 1)
                } else {
                    break;
                };
                let k = match step {
                    Some(k) => k,
                    None => {
                        if !end {
                            break;
                        }
                        let k = match self.find_from(i + 1, '>') {
                            Some(gt) => gt + 1,
                            None => self.find_from(i + 1, '<').unwrap_or(i + 1),
                        };
                        self.soup.data(&raw[i..k]);
                        k
                    }
                };
                i = k;
            } else if self.starts_with(i, "&#") {
                match charref_match(raw, i) {
                    Some(m) => {
                        self.soup.charref(&raw[i + 2..m.term_start]);
                        i = if m.term_is_semicolon { m.term_end } else { m.term_start };
                        continue;
                    }
                    None => {
                        if raw[i..].contains(';') {
                            self.soup.data(&raw[i..i + 2]);
                            i += 2;
                        }
                        break;
                    }
                }
            } else {
                // bytes[i] == b'&'
                if let Some(m) = entityref_match(raw, i) {
                    self.soup.entityref(&raw[i + 1..m.term_start]);
                    i = if m.term_is_semicolon { m.term_end } else { m.term_start };
                    continue;
                }
                let incomplete = bytes.get(i + 1).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'#');
                if incomplete {
                    // `incomplete.match()` covers exactly two characters.
                    if end && n - i == 2 {
                        i += 1;
                    }
                    break;
                } else if i + 1 < n {
                    self.soup.data("&");
                    i += 1;
                } else {
                    break;
                }
            }
        }
        if end && i < n && self.cdata_elem.is_none() {
            self.soup.data(&raw[i..n]);
            i = n;
        }
        Ok(i)
    }

    fn parse_starttag(&mut self, i: usize) -> Step {
        let endpos = self.check_for_whole_start_tag(i)?;
        let raw = self.raw;
        let (tag, mut k) = match TAGFIND.captures(&raw[i + 1..]) {
            Ok(Some(caps)) => {
                let name = caps.get(1).map_or("", |m| m.as_str()).to_lowercase();
                let end = caps.get(0).map_or(0, |m| m.end());
                (name, i + 1 + end)
            }
            // `starttagopen` matched, so `tagfind_tolerant` does too.
            _ => (String::new(), i + 1),
        };
        while k < endpos {
            match attrfind_end(raw, k) {
                Some(next) => k = next,
                None => break,
            }
        }
        let end = py_strip(raw.get(k..endpos).unwrap_or(""));
        if end != ">" && end != "/>" {
            self.soup.data(&raw[i..endpos]);
            return Some(endpos);
        }
        if end.ends_with("/>") {
            self.soup.startendtag(&tag);
        } else {
            self.soup.starttag(&tag, true);
            if tag == "script" {
                self.cdata_elem = Some("script");
            } else if tag == "style" {
                self.cdata_elem = Some("style");
            }
        }
        Some(endpos)
    }

    fn check_for_whole_start_tag(&self, i: usize) -> Step {
        let raw = self.raw;
        let j = match LOCATE_STARTTAG_END.find(&raw[i..]) {
            Ok(Some(m)) => i + m.end(),
            // Cannot happen (the pattern matches whenever `starttagopen` does); treat as incomplete.
            _ => return None,
        };
        let next = raw[j..].chars().next();
        match next {
            Some('>') => Some(j + 1),
            Some('/') => {
                if self.starts_with(j, "/>") {
                    Some(j + 2)
                } else {
                    // `rawdata.startswith("/", j)` is always true here: "buffer boundary".
                    None
                }
            }
            None => None,
            Some(c) if c.is_ascii_alphabetic() || c == '=' || c == '/' => None,
            Some(_) => {
                if j > i {
                    Some(j)
                } else {
                    Some(i + 1)
                }
            }
        }
    }

    fn parse_endtag(&mut self, i: usize) -> Step {
        let raw = self.raw;
        let gtpos = self.find_from(i + 1, '>')? + 1;
        let Some(caps) = ENDTAGFIND.captures(&raw[i..]) else {
            if self.cdata_elem.is_some() {
                self.soup.data(&raw[i..gtpos]);
                return Some(gtpos);
            }
            let namematch = match TAGFIND.captures(&raw[i + 2..]) {
                Ok(Some(caps)) => caps,
                _ => {
                    if self.starts_with(i, "</>") {
                        return Some(i + 3);
                    }
                    return self.parse_bogus_comment(i);
                }
            };
            let tagname = namematch.get(1).map_or("", |m| m.as_str()).to_lowercase();
            let name_end = i + 2 + namematch.get(0).map_or(0, |m| m.end());
            let gt = self.find_from(name_end, '>').map_or(gtpos, |p| p + 1);
            self.soup.endtag(&tagname, true);
            return Some(gt);
        };
        let elem = caps.get(1).map_or("", |m| m.as_str()).to_lowercase();
        if let Some(cdata) = self.cdata_elem {
            if elem != cdata {
                self.soup.data(&raw[i..gtpos]);
                return Some(gtpos);
            }
        }
        self.soup.endtag(&elem, true);
        self.cdata_elem = None;
        Some(gtpos)
    }

    fn parse_comment(&mut self, i: usize) -> Step {
        let raw = self.raw;
        let m = COMMENT_CLOSE.find_at(raw, i + 4)?;
        self.soup.special(&raw[i + 4..m.start()], StringKind::Hidden);
        Some(m.end())
    }

    fn parse_bogus_comment(&mut self, i: usize) -> Step {
        let pos = self.find_from(i + 2, '>')?;
        self.soup.special(&self.raw[i + 2..pos], StringKind::Hidden);
        Some(pos + 1)
    }

    fn parse_pi(&mut self, i: usize) -> Step {
        let pos = self.find_from(i + 2, '>')?;
        self.soup.special(&self.raw[i + 2..pos], StringKind::Hidden);
        Some(pos + 1)
    }

    fn parse_html_declaration(&mut self, i: usize) -> Result<Step, MarkupRejected> {
        let raw = self.raw;
        if self.starts_with(i, "<!--") {
            return Ok(self.parse_comment(i));
        }
        if self.starts_with(i, "<![") {
            return self.parse_marked_section(i);
        }
        let is_doctype = raw.get(i..i + 9).is_some_and(|s| s.eq_ignore_ascii_case("<!doctype"));
        if is_doctype {
            let Some(gt) = self.find_from(i + 9, '>') else {
                return Ok(None);
            };
            self.soup.special(&raw[i + 2..gt], StringKind::Hidden);
            return Ok(Some(gt + 1));
        }
        Ok(self.parse_bogus_comment(i))
    }

    fn parse_marked_section(&mut self, i: usize) -> Result<Step, MarkupRejected> {
        let raw = self.raw;
        let start = i + 3;
        if start == raw.len() {
            return Ok(None);
        }
        let Some(m) = DECLNAME.find(&raw[start..]) else {
            return Err(MarkupRejected { position: i, message: "expected name token after <![".to_owned() });
        };
        if start + m.end() == raw.len() {
            return Ok(None);
        }
        let name = py_strip(m.as_str()).to_lowercase();
        let close = match name.as_str() {
            "temp" | "cdata" | "ignore" | "include" | "rcdata" => MARKED_SECTION_CLOSE.find_at(raw, start),
            "if" | "else" | "endif" => MS_MARKED_SECTION_CLOSE.find_at(raw, start),
            _ => {
                return Err(MarkupRejected {
                    position: i,
                    message: format!("unknown status keyword {name:?} in marked section"),
                })
            }
        };
        let Some(close) = close else {
            return Ok(None);
        };
        let data = &raw[start..close.start()];
        let is_cdata = data.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("CDATA["));
        if is_cdata {
            self.soup.special(&data[6..], StringKind::CData);
        } else {
            self.soup.special(data, StringKind::Hidden);
        }
        Ok(Some(close.end()))
    }
}

/// Where a `charref`/`entityref` match ends: its terminating character.
struct RefMatch {
    term_start: usize,
    term_end: usize,
    term_is_semicolon: bool,
}

fn terminator(raw: &str, at: usize) -> Option<RefMatch> {
    let c = raw.get(at..)?.chars().next()?;
    Some(RefMatch { term_start: at, term_end: at + c.len_utf8(), term_is_semicolon: c == ';' })
}

/// `charref` (`&#(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F]`) matched at `i`.
fn charref_match(raw: &str, i: usize) -> Option<RefMatch> {
    let bytes = raw.as_bytes();
    let mut p = i + 2;
    let first = *bytes.get(p)?;
    if first.is_ascii_digit() {
        while bytes.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
    } else if first == b'x' || first == b'X' {
        p += 1;
        let digits_start = p;
        while bytes.get(p).is_some_and(u8::is_ascii_hexdigit) {
            p += 1;
        }
        if p == digits_start {
            return None;
        }
    } else {
        return None;
    }
    if bytes.get(p)?.is_ascii_hexdigit() {
        return None;
    }
    terminator(raw, p)
}

/// `entityref` (`&([a-zA-Z][-.a-zA-Z0-9]*)[^a-zA-Z0-9]`) matched at `i`, with backtracking.
fn entityref_match(raw: &str, i: usize) -> Option<RefMatch> {
    let bytes = raw.as_bytes();
    let name_start = i + 1;
    if !bytes.get(name_start)?.is_ascii_alphabetic() {
        return None;
    }
    let mut p = name_start + 1;
    while bytes.get(p).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.') {
        p += 1;
    }
    if p < bytes.len() {
        // The run stopped at a character outside `[-.a-zA-Z0-9]`, so not alphanumeric.
        return terminator(raw, p);
    }
    // End of input: give characters back until one of them (`-` or `.`) can terminate.
    let mut q = p - 1;
    while q > name_start {
        if matches!(bytes[q], b'-' | b'.') {
            return terminator(raw, q);
        }
        q -= 1;
    }
    None
}

/// End of an `attrfind_tolerant` match at `k`, or `None`.
fn attrfind_end(raw: &str, k: usize) -> Option<usize> {
    let prev = raw.get(..k)?.chars().next_back()?;
    if !(prev == '\'' || prev == '"' || prev == '/' || is_py_whitespace(prev)) {
        return None;
    }
    match ATTRFIND.find(raw.get(k..)?) {
        Ok(Some(m)) => Some(k + m.end()),
        _ => None,
    }
}

/// The text of `markup` as `BeautifulSoup(markup, "html.parser").get_text()` returns it.
///
/// Fails only where Python's parser fails (`ParserRejectedMarkup`): a `<![` marked section
/// whose keyword is missing or unknown.
///
/// ```
/// use text_prep::html_to_text;
/// assert_eq!(html_to_text("good.<br /><br />The &amp; end").unwrap(), "good.The & end");
/// ```
pub fn html_to_text(markup: &str) -> Result<String, MarkupRejected> {
    let mut parser = Parser::new(markup);
    let rest = parser.goahead(0, false)?;
    parser.goahead(rest, true)?;
    parser.soup.end_data(StringKind::Text);
    Ok(parser.soup.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        LazyLock::force(&LOCATE_STARTTAG_END);
        LazyLock::force(&TAGFIND);
        LazyLock::force(&ATTRFIND);
        LazyLock::force(&ENDTAGFIND);
        LazyLock::force(&COMMENT_CLOSE);
        LazyLock::force(&MARKED_SECTION_CLOSE);
        LazyLock::force(&MS_MARKED_SECTION_CLOSE);
        LazyLock::force(&DECLNAME);
        LazyLock::force(&SCRIPT_END);
        LazyLock::force(&STYLE_END);
    }

    #[test]
    fn entity_table_is_sorted() {
        assert!(entities::NAMED.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn numeric_references() {
        assert_eq!(numeric_character_reference(39), '\'');
        assert_eq!(numeric_character_reference(0), '\u{FFFD}');
        assert_eq!(numeric_character_reference(0x85), '\u{2026}');
        assert_eq!(numeric_character_reference(0x81), '\u{81}');
        assert_eq!(numeric_character_reference(0xD800), '\u{FFFD}');
        assert_eq!(numeric_character_reference(u64::MAX), '\u{FFFD}');
    }

    #[test]
    fn entityref_backtracks_at_end_of_input() {
        let m = entityref_match("&foo.", 0).map(|m| m.term_start);
        assert_eq!(m, Some(4));
        assert!(entityref_match("&foo", 0).is_none());
        assert_eq!(entityref_match("&amp;x", 0).map(|m| m.term_end), Some(5));
    }
}
