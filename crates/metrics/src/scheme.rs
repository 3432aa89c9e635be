//! Tagging schemes and seqeval's strict-mode entity extraction
//! (`seqeval.scheme.Tokens.entities`), driven by the same transition tables.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::InvalidTagReason;

/// A tag prefix as seqeval reads it: the first character of the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Prefix {
    /// Inside.
    I,
    /// Outside.
    O,
    /// Begin.
    B,
    /// End.
    E,
    /// Single.
    S,
    /// Unit (BILOU's single).
    U,
    /// Last (BILOU's end).
    L,
}

impl Prefix {
    const ALL: [Prefix; 7] = [Prefix::I, Prefix::O, Prefix::B, Prefix::E, Prefix::S, Prefix::U, Prefix::L];

    /// The prefix for a first character, if it is one of `I O B E S U L`.
    pub fn from_char(c: char) -> Option<Prefix> {
        Some(match c {
            'I' => Prefix::I,
            'O' => Prefix::O,
            'B' => Prefix::B,
            'E' => Prefix::E,
            'S' => Prefix::S,
            'U' => Prefix::U,
            'L' => Prefix::L,
            _ => return None,
        })
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// A strict tagging scheme (seqeval's `IOB1`, `IOE1`, `IOB2`, `IOE2`, `IOBES`, `BILOU`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// IOB1: `B-` only separates two adjacent entities of the same type.
    Iob1,
    /// IOE1: `E-` only separates two adjacent entities of the same type.
    Ioe1,
    /// IOB2: every entity starts with `B-`.
    Iob2,
    /// IOE2: every entity ends with `E-`.
    Ioe2,
    /// IOBES: `B-` / `I-` / `E-` for multi-token entities, `S-` for single tokens.
    Iobes,
    /// BILOU: `B-` / `I-` / `L-` for multi-token entities, `U-` for single tokens.
    Bilou,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Iob1 => "IOB1",
            Scheme::Ioe1 => "IOE1",
            Scheme::Iob2 => "IOB2",
            Scheme::Ioe2 => "IOE2",
            Scheme::Iobes => "IOBES",
            Scheme::Bilou => "BILOU",
        })
    }
}

/// Condition on the entity types of the previous and current token.
#[derive(Clone, Copy)]
enum TypeCondition {
    Same,
    Different,
    Any,
}

impl TypeCondition {
    const fn bits(self) -> u8 {
        match self {
            TypeCondition::Same => SAME_TYPE,
            TypeCondition::Different => DIFFERENT_TYPE,
            TypeCondition::Any => SAME_TYPE | DIFFERENT_TYPE,
        }
    }
}

const SAME_TYPE: u8 = 1;
const DIFFERENT_TYPE: u8 = 2;

/// `(previous prefixes, current prefixes, type condition)`, as in seqeval's pattern sets.
type Pattern = (u8, u8, TypeCondition);

const I: u8 = Prefix::I.bit();
const O: u8 = Prefix::O.bit();
const B: u8 = Prefix::B.bit();
const E: u8 = Prefix::E.bit();
const S: u8 = Prefix::S.bit();
const U: u8 = Prefix::U.bit();
const L: u8 = Prefix::L.bit();
const ANY: u8 = I | O | B | E | S | U | L;

use TypeCondition::{Any as AnyType, Different as Diff, Same};

/// Start, inside and end patterns of one scheme, plus its allowed prefixes.
struct SchemeDefinition {
    allowed: u8,
    start: &'static [Pattern],
    inside: &'static [Pattern],
    end: &'static [Pattern],
}

const IOB1: SchemeDefinition = SchemeDefinition {
    allowed: I | O | B,
    start: &[(O, I, AnyType), (I, I, Diff), (B, I, AnyType), (I, B, Same), (B, B, Same)],
    inside: &[(B, I, Same), (I, I, Same)],
    end: &[(I, I, Diff), (I, O, AnyType), (I, B, AnyType), (B, O, AnyType), (B, I, Diff), (B, B, Same)],
};

const IOE1: SchemeDefinition = SchemeDefinition {
    allowed: I | O | E,
    start: &[(O, I, AnyType), (I, I, Diff), (E, I, AnyType), (E, E, Same)],
    inside: &[(I, I, Same), (I, E, Same)],
    end: &[(I, I, Diff), (I, O, AnyType), (I, E, Diff), (E, I, Same), (E, E, Same)],
};

const IOB2: SchemeDefinition = SchemeDefinition {
    allowed: I | O | B,
    start: &[(ANY, B, AnyType)],
    inside: &[(B, I, Same), (I, I, Same)],
    end: &[(I, O, AnyType), (I, I, Diff), (I, B, AnyType), (B, O, AnyType), (B, I, Diff), (B, B, AnyType)],
};

const IOE2: SchemeDefinition = SchemeDefinition {
    allowed: I | O | E,
    start: &[(O, I, AnyType), (O, E, AnyType), (E, I, AnyType), (E, E, AnyType), (I, I, Diff), (I, E, Diff)],
    inside: &[(I, E, Same), (I, I, Same)],
    end: &[(E, ANY, AnyType)],
};

const IOBES: SchemeDefinition = SchemeDefinition {
    allowed: I | O | B | E | S,
    start: &[(ANY, B, AnyType), (ANY, S, AnyType)],
    inside: &[(B, I, Same), (B, E, Same), (I, I, Same), (I, E, Same)],
    end: &[(S, ANY, AnyType), (E, ANY, AnyType)],
};

const BILOU: SchemeDefinition = SchemeDefinition {
    allowed: I | O | B | L | U,
    start: &[(ANY, B, AnyType), (ANY, U, AnyType)],
    inside: &[(B, I, Same), (B, L, Same), (I, I, Same), (I, L, Same)],
    end: &[(U, ANY, AnyType), (L, ANY, AnyType)],
};

/// For each (previous, current) prefix pair, the type relations that match.
type TransitionTable = [[u8; 7]; 7];

const fn build_table(patterns: &[Pattern]) -> TransitionTable {
    let mut table = [[0u8; 7]; 7];
    let mut p = 0;
    while p < patterns.len() {
        let (prev_mask, cur_mask, condition) = patterns[p];
        let mut prev = 0;
        while prev < 7 {
            let mut cur = 0;
            while cur < 7 {
                if prev_mask & (1 << prev) != 0 && cur_mask & (1 << cur) != 0 {
                    table[prev][cur] |= condition.bits();
                }
                cur += 1;
            }
            prev += 1;
        }
        p += 1;
    }
    table
}

/// Compiled transition tables of one scheme.
struct CompiledScheme {
    allowed: u8,
    start: TransitionTable,
    inside: TransitionTable,
    end: TransitionTable,
}

const fn compile(definition: &SchemeDefinition) -> CompiledScheme {
    CompiledScheme {
        allowed: definition.allowed,
        start: build_table(definition.start),
        inside: build_table(definition.inside),
        end: build_table(definition.end),
    }
}

const COMPILED_IOB1: CompiledScheme = compile(&IOB1);
const COMPILED_IOE1: CompiledScheme = compile(&IOE1);
const COMPILED_IOB2: CompiledScheme = compile(&IOB2);
const COMPILED_IOE2: CompiledScheme = compile(&IOE2);
const COMPILED_IOBES: CompiledScheme = compile(&IOBES);
const COMPILED_BILOU: CompiledScheme = compile(&BILOU);

impl Scheme {
    fn compiled(self) -> &'static CompiledScheme {
        match self {
            Scheme::Iob1 => &COMPILED_IOB1,
            Scheme::Ioe1 => &COMPILED_IOE1,
            Scheme::Iob2 => &COMPILED_IOB2,
            Scheme::Ioe2 => &COMPILED_IOE2,
            Scheme::Iobes => &COMPILED_IOBES,
            Scheme::Bilou => &COMPILED_BILOU,
        }
    }

    /// Whether the scheme accepts tags with this prefix.
    pub fn allows(self, prefix: Prefix) -> bool {
        self.compiled().allowed & prefix.bit() != 0
    }

    /// The allowed prefixes, e.g. `"I, O, B"`.
    pub fn allowed_prefixes(self) -> String {
        Prefix::ALL.iter().filter(|p| self.allows(**p)).map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
    }

    /// seqeval's `Token.is_start(prev)`: does `current` start an entity after `previous`?
    pub fn is_start(self, previous: &StrictToken<'_>, current: &StrictToken<'_>) -> bool {
        matches(&self.compiled().start, previous, current)
    }

    /// seqeval's `Token.is_inside(prev)`: does `current` continue the entity of `previous`?
    pub fn is_inside(self, previous: &StrictToken<'_>, current: &StrictToken<'_>) -> bool {
        matches(&self.compiled().inside, previous, current)
    }

    /// seqeval's `Token.is_end(prev)`: does an entity end at `previous`, given `current`?
    pub fn is_end(self, previous: &StrictToken<'_>, current: &StrictToken<'_>) -> bool {
        matches(&self.compiled().end, previous, current)
    }
}

fn matches(table: &TransitionTable, previous: &StrictToken<'_>, current: &StrictToken<'_>) -> bool {
    let relation = if previous.entity_type == current.entity_type { SAME_TYPE } else { DIFFERENT_TYPE };
    table
        .get(previous.prefix.index())
        .and_then(|row| row.get(current.prefix.index()))
        .is_some_and(|bits| bits & relation != 0)
}

/// A tag parsed as seqeval's strict `Token`: prefix = first character,
/// type = the rest with `-` stripped from both ends, or `_` when empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrictToken<'a> {
    /// The prefix.
    pub prefix: Prefix,
    /// The entity type.
    pub entity_type: &'a str,
}

/// The sentinel `O` token seqeval appends to every sentence.
pub(crate) const OUTSIDE: StrictToken<'static> = StrictToken { prefix: Prefix::O, entity_type: "_" };

impl<'a> StrictToken<'a> {
    /// Parses a tag (without checking it against a scheme).
    pub fn parse(tag: &'a str) -> Result<StrictToken<'a>, InvalidTagReason> {
        let mut chars = tag.chars();
        let first = chars.next().ok_or(InvalidTagReason::Empty)?;
        let prefix = Prefix::from_char(first).ok_or(InvalidTagReason::UnknownPrefix)?;
        let entity_type = chars.as_str().trim_matches('-');
        Ok(StrictToken { prefix, entity_type: if entity_type.is_empty() { "_" } else { entity_type } })
    }

    /// Parses a tag and checks its prefix against `scheme`.
    pub fn parse_for(tag: &'a str, scheme: Scheme) -> Result<StrictToken<'a>, InvalidTagReason> {
        let token = StrictToken::parse(tag)?;
        if scheme.allows(token.prefix) {
            Ok(token)
        } else {
            Err(InvalidTagReason::PrefixNotInScheme { scheme })
        }
    }
}

/// Strict-mode entities of one sentence, as `(type, start, end)` with `end`
/// exclusive, pushed onto `out`. `tokens` must end with the [`OUTSIDE`] sentinel
/// and every token must be allowed by `scheme`.
pub(crate) fn strict_entities<'a>(tokens: &[StrictToken<'a>], scheme: Scheme, out: &mut Vec<(&'a str, usize, usize)>) {
    let mut i = 0;
    let mut previous = OUTSIDE;
    while let Some(token) = tokens.get(i) {
        if scheme.is_start(&previous, token) {
            let end = forward(tokens, i + 1, *token, scheme);
            let is_end = match (end.checked_sub(1).and_then(|p| tokens.get(p)), tokens.get(end)) {
                (Some(before), Some(at)) => scheme.is_end(before, at),
                _ => false,
            };
            if is_end {
                out.push((token.entity_type, i, end));
            }
            i = end;
        } else {
            i += 1;
        }
        if let Some(before) = i.checked_sub(1).and_then(|p| tokens.get(p)) {
            previous = *before;
        }
    }
}

/// First index from `start` whose token does not continue the entity.
fn forward(tokens: &[StrictToken<'_>], start: usize, first: StrictToken<'_>, scheme: Scheme) -> usize {
    let mut previous = first;
    for (offset, token) in tokens.iter().enumerate().skip(start) {
        if scheme.is_inside(&previous, token) {
            previous = *token;
        } else {
            return offset;
        }
    }
    // Unreachable with the trailing `O` sentinel, which never continues an entity.
    tokens.len().saturating_sub(1).max(start)
}
