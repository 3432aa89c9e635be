//! seqeval's `tests/test_scheme.py`, ported: token parsing, the start / inside /
//! end transition tables of every scheme, strict entity extraction with and
//! without types, and prefix validation.

use metrics::{extract_entities, EntityMode, InvalidTagReason, MetricsError, Prefix, Scheme, StrictToken};

const T: bool = true;
const F: bool = false;

fn token(tag: &str) -> StrictToken<'_> {
    match StrictToken::parse(tag) {
        Ok(token) => token,
        Err(reason) => panic!("{tag:?} should parse: {reason}"),
    }
}

/// `[is_start, is_inside, is_end]` of `current` after `previous`, for each row.
fn check_transitions(scheme: Scheme, table: &[(&str, &str, [bool; 3])]) {
    for &(previous, current, expected) in table {
        let (p, c) = (token(previous), token(current));
        let actual = [scheme.is_start(&p, &c), scheme.is_inside(&p, &c), scheme.is_end(&p, &c)];
        assert_eq!(actual, expected, "{scheme}: {previous} -> {current}");
    }
}

/// Entities of one sentence as `(type, start, end)`.
fn entities(tags: &[&str], scheme: Scheme) -> Vec<(String, usize, usize)> {
    match extract_entities(&[tags], EntityMode::Strict(scheme)) {
        Ok(found) => found.into_iter().map(|e| (e.entity_type, e.start, e.end)).collect(),
        Err(error) => panic!("{scheme} {tags:?}: {error}"),
    }
}

/// One row of a token table: the tags and the expected `(type, start, end)` entities.
type TokenCase<'a> = (&'a [&'a str], &'a [(&'a str, usize, usize)]);

fn check_tokens(scheme: Scheme, table: &[TokenCase<'_>]) {
    for &(tags, expected) in table {
        let expected: Vec<(String, usize, usize)> = expected.iter().map(|&(t, s, e)| (t.to_owned(), s, e)).collect();
        assert_eq!(entities(tags, scheme), expected, "{scheme}: {tags:?}");
    }
}

#[test]
fn token_prefix() {
    for (tag, prefix) in [("I-MISC", Prefix::I), ("B-MISC", Prefix::B), ("O", Prefix::O)] {
        assert_eq!(token(tag).prefix, prefix, "{tag}");
    }
}

#[test]
fn token_tag() {
    for (tag, expected) in [
        ("I-MISC", "MISC"),
        ("I", "_"),
        ("O", "_"),
        ("I-ORG-COMPANY", "ORG-COMPANY"),
        ("I-組織", "組織"),
        ("B--PER-", "PER"),
    ] {
        assert_eq!(token(tag).entity_type, expected, "{tag}");
    }
}

#[test]
fn token_errors() {
    assert_eq!(StrictToken::parse(""), Err(InvalidTagReason::Empty));
    assert_eq!(StrictToken::parse("T"), Err(InvalidTagReason::UnknownPrefix));
    assert_eq!(StrictToken::parse("組織"), Err(InvalidTagReason::UnknownPrefix));
}

#[test]
fn iob1_start_inside_end() {
    check_transitions(
        Scheme::Iob1,
        &[
            ("O", "O", [F, F, F]),
            ("O", "I-PER", [T, F, F]),
            ("O", "B-PER", [F, F, F]),
            ("I-PER", "O", [F, F, T]),
            ("I-PER", "I-PER", [F, T, F]),
            ("I-PER", "I-ORG", [T, F, T]),
            ("I-PER", "B-PER", [T, F, T]),
            ("I-PER", "B-ORG", [F, F, T]),
            ("B-PER", "O", [F, F, T]),
            ("B-PER", "I-PER", [T, T, F]),
            ("B-PER", "I-ORG", [T, F, T]),
            ("B-PER", "B-PER", [T, F, T]),
            ("B-PER", "B-ORG", [F, F, F]),
        ],
    );
}

#[test]
fn iob2_start_inside_end() {
    check_transitions(
        Scheme::Iob2,
        &[
            ("O", "O", [F, F, F]),
            ("O", "I-PER", [F, F, F]),
            ("O", "B-PER", [T, F, F]),
            ("I-PER", "O", [F, F, T]),
            ("I-PER", "I-PER", [F, T, F]),
            ("I-PER", "I-ORG", [F, F, T]),
            ("I-PER", "B-PER", [T, F, T]),
            ("I-PER", "B-ORG", [T, F, T]),
            ("B-PER", "O", [F, F, T]),
            ("B-PER", "I-PER", [F, T, F]),
            ("B-PER", "I-ORG", [F, F, T]),
            ("B-PER", "B-PER", [T, F, T]),
            ("B-PER", "B-ORG", [T, F, T]),
        ],
    );
}

#[test]
fn ioe1_start_inside_end() {
    check_transitions(
        Scheme::Ioe1,
        &[
            ("O", "O", [F, F, F]),
            ("O", "I-PER", [T, F, F]),
            ("O", "E-PER", [F, F, F]),
            ("I-PER", "O", [F, F, T]),
            ("I-PER", "I-PER", [F, T, F]),
            ("I-PER", "I-ORG", [T, F, T]),
            ("I-PER", "E-PER", [F, T, F]),
            ("I-PER", "E-ORG", [F, F, T]),
            ("E-PER", "O", [F, F, F]),
            ("E-PER", "I-PER", [T, F, T]),
            ("E-PER", "I-ORG", [T, F, F]),
            ("E-PER", "E-PER", [T, F, T]),
            ("E-PER", "E-ORG", [F, F, F]),
        ],
    );
}

#[test]
fn ioe2_start_inside_end() {
    check_transitions(
        Scheme::Ioe2,
        &[
            ("O", "O", [F, F, F]),
            ("O", "I-PER", [T, F, F]),
            ("O", "E-PER", [T, F, F]),
            ("I-PER", "O", [F, F, F]),
            ("I-PER", "I-PER", [F, T, F]),
            ("I-PER", "I-ORG", [T, F, F]),
            ("I-PER", "E-PER", [F, T, F]),
            ("I-PER", "E-ORG", [T, F, F]),
            ("E-PER", "O", [F, F, T]),
            ("E-PER", "I-PER", [T, F, T]),
            ("E-PER", "I-ORG", [T, F, T]),
            ("E-PER", "E-PER", [T, F, T]),
            ("E-PER", "E-ORG", [T, F, T]),
        ],
    );
}

#[test]
fn iobes_start_inside_end() {
    check_transitions(
        Scheme::Iobes,
        &[
            ("O", "O", [F, F, F]),
            ("O", "I-PER", [F, F, F]),
            ("O", "B-PER", [T, F, F]),
            ("O", "E-PER", [F, F, F]),
            ("O", "S-PER", [T, F, F]),
            ("I-PER", "O", [F, F, F]),
            ("I-PER", "I-PER", [F, T, F]),
            ("I-PER", "I-ORG", [F, F, F]),
            ("I-PER", "B-PER", [T, F, F]),
            ("I-PER", "E-PER", [F, T, F]),
            ("I-PER", "E-ORG", [F, F, F]),
            ("I-PER", "S-PER", [T, F, F]),
            ("B-PER", "O", [F, F, F]),
            ("B-PER", "I-PER", [F, T, F]),
            ("B-PER", "I-ORG", [F, F, F]),
            ("B-PER", "E-PER", [F, T, F]),
            ("B-PER", "E-ORG", [F, F, F]),
            ("B-PER", "S-PER", [T, F, F]),
            ("E-PER", "O", [F, F, T]),
            ("E-PER", "I-PER", [F, F, T]),
            ("E-PER", "B-PER", [T, F, T]),
            ("E-PER", "E-PER", [F, F, T]),
            ("E-PER", "S-PER", [T, F, T]),
            ("S-PER", "O", [F, F, T]),
            ("S-PER", "I-PER", [F, F, T]),
            ("S-PER", "B-PER", [T, F, T]),
            ("S-PER", "E-PER", [F, F, T]),
            ("S-PER", "S-PER", [T, F, T]),
        ],
    );
}

#[test]
fn bilou_start_inside_end() {
    check_transitions(
        Scheme::Bilou,
        &[
            ("O", "O", [F, F, F]),
            ("O", "I-PER", [F, F, F]),
            ("O", "B-PER", [T, F, F]),
            ("O", "L-PER", [F, F, F]),
            ("O", "U-PER", [T, F, F]),
            ("I-PER", "O", [F, F, F]),
            ("I-PER", "I-PER", [F, T, F]),
            ("I-PER", "I-ORG", [F, F, F]),
            ("I-PER", "B-PER", [T, F, F]),
            ("I-PER", "L-PER", [F, T, F]),
            ("I-PER", "L-ORG", [F, F, F]),
            ("I-PER", "U-PER", [T, F, F]),
            ("B-PER", "O", [F, F, F]),
            ("B-PER", "I-PER", [F, T, F]),
            ("B-PER", "I-ORG", [F, F, F]),
            ("B-PER", "L-PER", [F, T, F]),
            ("B-PER", "L-ORG", [F, F, F]),
            ("B-PER", "U-PER", [T, F, F]),
            ("L-PER", "O", [F, F, T]),
            ("L-PER", "I-PER", [F, F, T]),
            ("L-PER", "B-PER", [T, F, T]),
            ("L-PER", "L-PER", [F, F, T]),
            ("L-PER", "U-PER", [T, F, T]),
            ("U-PER", "O", [F, F, T]),
            ("U-PER", "I-PER", [F, F, T]),
            ("U-PER", "B-PER", [T, F, T]),
            ("U-PER", "L-PER", [F, F, T]),
            ("U-PER", "U-PER", [T, F, T]),
        ],
    );
}

#[test]
fn iob1_tokens() {
    check_tokens(
        Scheme::Iob1,
        &[
            (&[], &[]),
            (&["B-PER"], &[]),
            (&["I-PER"], &[("PER", 0, 1)]),
            (&["O"], &[]),
            (&["O", "I-PER"], &[("PER", 1, 2)]),
            (&["O", "B-PER"], &[]),
            (&["I-PER", "O"], &[("PER", 0, 1)]),
            (&["I-PER", "I-PER"], &[("PER", 0, 2)]),
            (&["I-PER", "I-ORG"], &[("PER", 0, 1), ("ORG", 1, 2)]),
            (&["I-PER", "B-PER"], &[("PER", 0, 1), ("PER", 1, 2)]),
            (&["I-PER", "B-ORG"], &[("PER", 0, 1)]),
            (&["B-PER", "O"], &[]),
            (&["B-PER", "I-PER"], &[("PER", 1, 2)]),
            (&["B-PER", "I-ORG"], &[("ORG", 1, 2)]),
            (&["B-PER", "B-PER"], &[("PER", 1, 2)]),
            (&["B-PER", "B-ORG"], &[]),
        ],
    );
}

#[test]
fn iob1_tokens_without_tag() {
    check_tokens(
        Scheme::Iob1,
        &[
            (&[], &[]),
            (&["B"], &[]),
            (&["I"], &[("_", 0, 1)]),
            (&["O"], &[]),
            (&["O", "O"], &[]),
            (&["O", "I"], &[("_", 1, 2)]),
            (&["O", "B"], &[]),
            (&["I", "O"], &[("_", 0, 1)]),
            (&["I", "I"], &[("_", 0, 2)]),
            (&["I", "B"], &[("_", 0, 1), ("_", 1, 2)]),
            (&["B", "O"], &[]),
            (&["B", "I"], &[("_", 1, 2)]),
            (&["B", "B"], &[("_", 1, 2)]),
        ],
    );
}

#[test]
fn iob2_tokens() {
    check_tokens(
        Scheme::Iob2,
        &[
            (&[], &[]),
            (&["B-PER"], &[("PER", 0, 1)]),
            (&["I-PER"], &[]),
            (&["O"], &[]),
            (&["O", "I-PER"], &[]),
            (&["O", "B-PER"], &[("PER", 1, 2)]),
            (&["I-PER", "O"], &[]),
            (&["I-PER", "I-PER"], &[]),
            (&["I-PER", "I-ORG"], &[]),
            (&["I-PER", "B-PER"], &[("PER", 1, 2)]),
            (&["I-PER", "B-ORG"], &[("ORG", 1, 2)]),
            (&["B-PER", "O"], &[("PER", 0, 1)]),
            (&["B-PER", "I-PER"], &[("PER", 0, 2)]),
            (&["B-PER", "I-ORG"], &[("PER", 0, 1)]),
            (&["B-PER", "B-PER"], &[("PER", 0, 1), ("PER", 1, 2)]),
            (&["B-PER", "B-ORG"], &[("PER", 0, 1), ("ORG", 1, 2)]),
            // From seqeval's docstring.
            (&["B-PER", "I-PER", "O", "B-LOC"], &[("PER", 0, 2), ("LOC", 3, 4)]),
        ],
    );
}

#[test]
fn iob2_tokens_without_tag() {
    check_tokens(
        Scheme::Iob2,
        &[
            (&[], &[]),
            (&["B"], &[("_", 0, 1)]),
            (&["I"], &[]),
            (&["O"], &[]),
            (&["O", "O"], &[]),
            (&["O", "I"], &[]),
            (&["O", "B"], &[("_", 1, 2)]),
            (&["I", "O"], &[]),
            (&["I", "I"], &[]),
            (&["I", "B"], &[("_", 1, 2)]),
            (&["B", "O"], &[("_", 0, 1)]),
            (&["B", "I"], &[("_", 0, 2)]),
            (&["B", "B"], &[("_", 0, 1), ("_", 1, 2)]),
        ],
    );
}

#[test]
fn ioe1_tokens() {
    check_tokens(
        Scheme::Ioe1,
        &[
            (&[], &[]),
            (&["E-PER"], &[]),
            (&["I-PER"], &[("PER", 0, 1)]),
            (&["O"], &[]),
            (&["O", "I-PER"], &[("PER", 1, 2)]),
            (&["O", "E-PER"], &[]),
            (&["I-PER", "O"], &[("PER", 0, 1)]),
            (&["I-PER", "I-PER"], &[("PER", 0, 2)]),
            (&["I-PER", "I-ORG"], &[("PER", 0, 1), ("ORG", 1, 2)]),
            (&["I-PER", "E-ORG"], &[("PER", 0, 1)]),
            (&["E-PER", "O"], &[]),
            (&["E-PER", "I-PER"], &[("PER", 1, 2)]),
            (&["E-PER", "I-ORG"], &[("ORG", 1, 2)]),
            (&["E-PER", "E-PER"], &[]),
            (&["E-PER", "E-ORG"], &[]),
        ],
    );
}

#[test]
fn ioe1_tokens_without_tag() {
    check_tokens(
        Scheme::Ioe1,
        &[
            (&[], &[]),
            (&["E"], &[]),
            (&["I"], &[("_", 0, 1)]),
            (&["O"], &[]),
            (&["O", "O"], &[]),
            (&["O", "I"], &[("_", 1, 2)]),
            (&["O", "E"], &[]),
            (&["I", "O"], &[("_", 0, 1)]),
            (&["I", "I"], &[("_", 0, 2)]),
            (&["E", "O"], &[]),
            (&["E", "I"], &[("_", 1, 2)]),
            (&["E", "E"], &[]),
        ],
    );
}

#[test]
fn ioe2_tokens() {
    check_tokens(
        Scheme::Ioe2,
        &[
            (&[], &[]),
            (&["E-PER"], &[("PER", 0, 1)]),
            (&["I-PER"], &[]),
            (&["O"], &[]),
            (&["O", "I-PER"], &[]),
            (&["O", "E-PER"], &[("PER", 1, 2)]),
            (&["I-PER", "O"], &[]),
            (&["I-PER", "I-PER"], &[]),
            (&["I-PER", "I-ORG"], &[]),
            (&["I-PER", "E-PER"], &[("PER", 0, 2)]),
            (&["I-PER", "E-ORG"], &[("ORG", 1, 2)]),
            (&["E-PER", "O"], &[("PER", 0, 1)]),
            (&["E-PER", "I-PER"], &[("PER", 0, 1)]),
            (&["E-PER", "I-ORG"], &[("PER", 0, 1)]),
            (&["E-PER", "E-PER"], &[("PER", 0, 1), ("PER", 1, 2)]),
            (&["E-PER", "E-ORG"], &[("PER", 0, 1), ("ORG", 1, 2)]),
        ],
    );
}

#[test]
fn ioe2_tokens_without_tag() {
    check_tokens(
        Scheme::Ioe2,
        &[
            (&[], &[]),
            (&["E"], &[("_", 0, 1)]),
            (&["I"], &[]),
            (&["O"], &[]),
            (&["O", "O"], &[]),
            (&["O", "I"], &[]),
            (&["O", "E"], &[("_", 1, 2)]),
            (&["I", "O"], &[]),
            (&["I", "I"], &[]),
            (&["I", "E"], &[("_", 0, 2)]),
            (&["E", "O"], &[("_", 0, 1)]),
            (&["E", "I"], &[("_", 0, 1)]),
            (&["E", "E"], &[("_", 0, 1), ("_", 1, 2)]),
        ],
    );
}

#[test]
fn iobes_tokens() {
    check_tokens(
        Scheme::Iobes,
        &[
            (&["O"], &[]),
            (&["I-PER"], &[]),
            (&["B-PER"], &[]),
            (&["E-PER"], &[]),
            (&["S-PER"], &[("PER", 0, 1)]),
            (&["O", "O"], &[]),
            (&["O", "I-PER"], &[]),
            (&["O", "B-PER"], &[]),
            (&["O", "E-PER"], &[]),
            (&["O", "S-PER"], &[("PER", 1, 2)]),
            (&["I-PER", "O"], &[]),
            (&["I-PER", "I-PER"], &[]),
            (&["I-PER", "I-ORG"], &[]),
            (&["I-PER", "B-PER"], &[]),
            (&["I-PER", "E-PER"], &[]),
            (&["I-PER", "E-ORG"], &[]),
            (&["I-PER", "S-PER"], &[("PER", 1, 2)]),
            (&["B-PER", "O"], &[]),
            (&["B-PER", "I-PER"], &[]),
            (&["B-PER", "I-ORG"], &[]),
            (&["B-PER", "B-PER"], &[]),
            (&["B-PER", "E-PER"], &[("PER", 0, 2)]),
            (&["B-PER", "E-ORG"], &[]),
            (&["B-PER", "S-PER"], &[("PER", 1, 2)]),
            (&["E-PER", "O"], &[]),
            (&["E-PER", "I-PER"], &[]),
            (&["E-PER", "B-PER"], &[]),
            (&["E-PER", "E-PER"], &[]),
            (&["E-PER", "S-PER"], &[("PER", 1, 2)]),
            (&["S-PER", "O"], &[("PER", 0, 1)]),
            (&["S-PER", "I-PER"], &[("PER", 0, 1)]),
            (&["S-PER", "B-PER"], &[("PER", 0, 1)]),
            (&["S-PER", "E-PER"], &[("PER", 0, 1)]),
            (&["S-PER", "S-PER"], &[("PER", 0, 1), ("PER", 1, 2)]),
        ],
    );
}

#[test]
fn iobes_tokens_without_tag() {
    check_tokens(
        Scheme::Iobes,
        &[
            (&["O"], &[]),
            (&["I"], &[]),
            (&["B"], &[]),
            (&["E"], &[]),
            (&["S"], &[("_", 0, 1)]),
            (&["O", "O"], &[]),
            (&["O", "I"], &[]),
            (&["O", "B"], &[]),
            (&["O", "E"], &[]),
            (&["O", "S"], &[("_", 1, 2)]),
            (&["I", "O"], &[]),
            (&["I", "I"], &[]),
            (&["I", "B"], &[]),
            (&["I", "E"], &[]),
            (&["I", "S"], &[("_", 1, 2)]),
            (&["B", "O"], &[]),
            (&["B", "I"], &[]),
            (&["B", "B"], &[]),
            (&["B", "E"], &[("_", 0, 2)]),
            (&["B", "S"], &[("_", 1, 2)]),
            (&["E", "O"], &[]),
            (&["E", "I"], &[]),
            (&["E", "B"], &[]),
            (&["E", "E"], &[]),
            (&["E", "S"], &[("_", 1, 2)]),
            (&["S", "O"], &[("_", 0, 1)]),
            (&["S", "I"], &[("_", 0, 1)]),
            (&["S", "B"], &[("_", 0, 1)]),
            (&["S", "E"], &[("_", 0, 1)]),
            (&["S", "S"], &[("_", 0, 1), ("_", 1, 2)]),
        ],
    );
}

#[test]
fn bilou_tokens() {
    check_tokens(
        Scheme::Bilou,
        &[
            (&["O"], &[]),
            (&["I-PER"], &[]),
            (&["B-PER"], &[]),
            (&["L-PER"], &[]),
            (&["U-PER"], &[("PER", 0, 1)]),
            (&["O", "O"], &[]),
            (&["O", "I-PER"], &[]),
            (&["O", "B-PER"], &[]),
            (&["O", "L-PER"], &[]),
            (&["O", "U-PER"], &[("PER", 1, 2)]),
            (&["I-PER", "O"], &[]),
            (&["I-PER", "I-PER"], &[]),
            (&["I-PER", "I-ORG"], &[]),
            (&["I-PER", "B-PER"], &[]),
            (&["I-PER", "L-PER"], &[]),
            (&["I-PER", "L-ORG"], &[]),
            (&["I-PER", "U-PER"], &[("PER", 1, 2)]),
            (&["B-PER", "O"], &[]),
            (&["B-PER", "I-PER"], &[]),
            (&["B-PER", "I-ORG"], &[]),
            (&["B-PER", "B-PER"], &[]),
            (&["B-PER", "L-PER"], &[("PER", 0, 2)]),
            (&["B-PER", "L-ORG"], &[]),
            (&["B-PER", "U-PER"], &[("PER", 1, 2)]),
            (&["L-PER", "O"], &[]),
            (&["L-PER", "I-PER"], &[]),
            (&["L-PER", "B-PER"], &[]),
            (&["L-PER", "L-PER"], &[]),
            (&["L-PER", "U-PER"], &[("PER", 1, 2)]),
            (&["U-PER", "O"], &[("PER", 0, 1)]),
            (&["U-PER", "I-PER"], &[("PER", 0, 1)]),
            (&["U-PER", "B-PER"], &[("PER", 0, 1)]),
            (&["U-PER", "L-PER"], &[("PER", 0, 1)]),
            (&["U-PER", "U-PER"], &[("PER", 0, 1), ("PER", 1, 2)]),
        ],
    );
}

#[test]
fn bilou_tokens_without_tag() {
    check_tokens(
        Scheme::Bilou,
        &[
            (&["O"], &[]),
            (&["I"], &[]),
            (&["B"], &[]),
            (&["L"], &[]),
            (&["U"], &[("_", 0, 1)]),
            (&["O", "O"], &[]),
            (&["O", "I"], &[]),
            (&["O", "B"], &[]),
            (&["O", "L"], &[]),
            (&["O", "U"], &[("_", 1, 2)]),
            (&["I", "O"], &[]),
            (&["I", "I"], &[]),
            (&["I", "B"], &[]),
            (&["I", "L"], &[]),
            (&["I", "U"], &[("_", 1, 2)]),
            (&["B", "O"], &[]),
            (&["B", "I"], &[]),
            (&["B", "B"], &[]),
            (&["B", "L"], &[("_", 0, 2)]),
            (&["B", "U"], &[("_", 1, 2)]),
            (&["L", "O"], &[]),
            (&["L", "I"], &[]),
            (&["L", "B"], &[]),
            (&["L", "L"], &[]),
            (&["L", "U"], &[("_", 1, 2)]),
            (&["U", "O"], &[("_", 0, 1)]),
            (&["U", "I"], &[("_", 0, 1)]),
            (&["U", "B"], &[("_", 0, 1)]),
            (&["U", "L"], &[("_", 0, 1)]),
            (&["U", "U"], &[("_", 0, 1), ("_", 1, 2)]),
        ],
    );
}

#[test]
fn valid_prefixes() {
    let cases = [
        (Scheme::Iob1, "IOB"),
        (Scheme::Iob2, "IOB"),
        (Scheme::Ioe1, "IOE"),
        (Scheme::Ioe2, "IOE"),
        (Scheme::Iobes, "IOBES"),
        (Scheme::Bilou, "IOBLU"),
    ];
    for (scheme, allowed) in cases {
        for prefix in "IOBESUL".chars() {
            let tag = prefix.to_string();
            let parsed = StrictToken::parse_for(&tag, scheme);
            if allowed.contains(prefix) {
                assert!(parsed.is_ok(), "{scheme} should allow {tag}");
            } else {
                assert_eq!(parsed, Err(InvalidTagReason::PrefixNotInScheme { scheme }), "{scheme} should reject {tag}");
            }
        }
    }
}

#[test]
fn iobes_tokens_with_iob2_scheme_are_rejected() {
    let result = extract_entities(&[["B-PER", "E-PER", "S-PER"]], EntityMode::Strict(Scheme::Iob2));
    match result {
        Err(MetricsError::InvalidTag { sentence, token, tag, reason, .. }) => {
            assert_eq!((sentence, token, tag.as_str()), (0, 1, "E-PER"));
            assert_eq!(reason, InvalidTagReason::PrefixNotInScheme { scheme: Scheme::Iob2 });
        }
        other => panic!("expected an invalid tag, got {other:?}"),
    }
}

#[test]
fn entities_carry_their_sentence() {
    // seqeval's Entities.filter: [['B-PER', 'B-ORG']] has PER(0, 0, 1) and ORG(0, 1, 2).
    let found = extract_entities(&[vec!["O"], vec!["B-PER", "B-ORG"]], EntityMode::Strict(Scheme::Iob2));
    let found = match found {
        Ok(found) => found,
        Err(error) => panic!("{error}"),
    };
    let tuples: Vec<(usize, &str, usize, usize)> =
        found.iter().map(|e| (e.sentence, e.entity_type.as_str(), e.start, e.end)).collect();
    assert_eq!(tuples, vec![(1, "PER", 0, 1), (1, "ORG", 1, 2)]);
}

#[test]
fn brief_examples_for_strict_iob2() {
    let iob2 = Scheme::Iob2;
    assert_eq!(entities(&["I-PER"], iob2), vec![]);
    assert_eq!(entities(&["I-PER", "B-ORG"], iob2), vec![("ORG".to_owned(), 1, 2)]);
    assert_eq!(entities(&["B-PER", "B-PER"], iob2), vec![("PER".to_owned(), 0, 1), ("PER".to_owned(), 1, 2)]);
    assert_eq!(entities(&["B-PER", "I-ORG"], iob2), vec![("PER".to_owned(), 0, 1)]);
}
