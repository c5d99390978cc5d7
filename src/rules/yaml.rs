//! YAML text -> a tree of nodes that each know their line and column.
//!
//! In: the text of one rule file. Out: the document's root [`Node`] (or `None` for an empty
//! file), or the YAML syntax error with its position. serde-saphyr parses the text; every node is
//! read through `serde_saphyr::Spanned`, so the later checks can point at the exact key or value
//! that is wrong and keep going instead of stopping at the first problem, which a strict serde
//! derive would do.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, MessageFormatter, NonFiniteFloatPolicy, Spanned};

/// A position in a file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

/// One YAML node with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where the node starts (for a mapping: its first key).
    pub pos: Pos,
}

/// The value of a [`Node`], scalars already resolved by the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false` (YAML 1.1 `yes`/`no` stay strings).
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// A float, including `.inf` and `.nan`, which the checks reject where a finite number is due.
    Float(f64),
    /// A string, quoted or plain.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in document order; duplicates are kept so they can be reported.
    Map(Vec<(Node, Node)>),
}

impl NodeKind {
    /// The kind's name as used in "must be ..., got ..." messages.
    pub fn describe(&self) -> &'static str {
        match self {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a sequence",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error: the parser's message and where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Position reported by the parser (1:1 when it gave none).
    pub pos: Pos,
    /// The parser's message, without position.
    pub message: String,
}

/// Parses one YAML document into a positioned tree; `Ok(None)` for an empty document.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        non_finite_float_policy: NonFiniteFloatPolicy::PassThrough,
        strict_booleans: true,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Option<Spanned<Tree>>>(text, options) {
        Ok(root) => Ok(root.map(into_node)),
        Err(err) => {
            let pos = err
                .location()
                .map(|l| Pos {
                    line: clamp(l.line()).max(1),
                    col: clamp(l.column()).max(1),
                })
                .unwrap_or(Pos { line: 1, col: 1 });
            let raw = serde_saphyr::DefaultMessageFormatter.format_message(err.without_snippet());
            let message = if raw.starts_with("multiple YAML documents") {
                "a rule file must hold a single yaml document".to_string()
            } else if raw.contains("block scalar") {
                format!("{raw} (quote values that start with > or |, such as op: \">=\")")
            } else {
                raw.replace('\n', " ")
            };
            Err(SyntaxError { pos, message })
        }
    }
}

/// A line or column as u32 (saturating; no rule file has four billion lines).
fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The serde-facing shape: like [`Node`] but with serde-saphyr's spans on every child.
enum Tree {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<Tree>, Spanned<Tree>)>),
}

fn into_node(spanned: Spanned<Tree>) -> Node {
    let pos = Pos {
        line: clamp(spanned.referenced.line()),
        col: clamp(spanned.referenced.column()),
    };
    let kind = match spanned.value {
        Tree::Null => NodeKind::Null,
        Tree::Bool(b) => NodeKind::Bool(b),
        Tree::Int(i) => NodeKind::Int(i),
        Tree::Float(f) => NodeKind::Float(f),
        Tree::Str(s) => NodeKind::Str(s),
        Tree::Seq(items) => NodeKind::Seq(items.into_iter().map(into_node).collect()),
        Tree::Map(pairs) => NodeKind::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (into_node(k), into_node(v)))
                .collect(),
        ),
    };
    Node { kind, pos }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any yaml value")
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree, D::Error> {
        Tree::deserialize(deserializer)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(i64::try_from(v).map_or(Tree::Float(v as f64), Tree::Int))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Tree, E> {
        Ok(i64::try_from(v).map_or(Tree::Float(v as f64), Tree::Int))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Tree, E> {
        Ok(i64::try_from(v).map_or(Tree::Float(v as f64), Tree::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Tree, E> {
        Ok(Tree::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            pairs.push((key, value));
        }
        Ok(Tree::Map(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }

    #[test]
    fn positions_of_keys_and_values() {
        let root = parse("a: 1\nb:\n  - x\n  - 2.5\n").unwrap().unwrap();
        let NodeKind::Map(pairs) = &root.kind else {
            panic!("not a map: {root:?}");
        };
        assert_eq!(pairs[0].0.pos, at(1, 1));
        assert_eq!(pairs[0].1.kind, NodeKind::Int(1));
        assert_eq!(pairs[0].1.pos, at(1, 4));
        let NodeKind::Seq(items) = &pairs[1].1.kind else {
            panic!("not a seq");
        };
        assert_eq!(items[0].kind, NodeKind::Str("x".into()));
        assert_eq!(items[0].pos, at(3, 5));
        assert_eq!(items[1].kind, NodeKind::Float(2.5));
    }

    #[test]
    fn empty_document_is_none() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# just a comment\n").unwrap(), None);
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings_and_duplicates_are_kept() {
        let root = parse("a: yes\na: .nan\n").unwrap().unwrap();
        let NodeKind::Map(pairs) = &root.kind else {
            panic!("not a map");
        };
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].1.kind, NodeKind::Str("yes".into()));
        assert!(matches!(pairs[1].1.kind, NodeKind::Float(f) if f.is_nan()));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\n").unwrap_err();
        assert_eq!(err.pos, at(1, 4));
        assert_eq!(err.message, "unclosed bracket '['");
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.message, "a rule file must hold a single yaml document");
    }
}
