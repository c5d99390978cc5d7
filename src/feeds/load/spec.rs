//! One canonical field's spec in a mapping -> a checked [`ValueSpec`]: its source fields,
//! type, format, unit, code table, literal or template; and what each kind of event allows
//! in a field.

use super::*;

/// The canonical type of a field: a spec's `type` must produce it.
pub(super) fn canonical_type(field: &str) -> ValueType {
    match field {
        "line" => ValueType::Integer,
        "quantity" | "unit_price" | "on_hand" | "daily_demand" => ValueType::Number,
        "order_date" | "promised_date" => ValueType::Date,
        "event_time" | "received_at" | "shipped_at" | "eta" => ValueType::Timestamp,
        "po_lines" => ValueType::PoLineRefs,
        _ => ValueType::String,
    }
}

/// The canonical fields that must not be negative.
pub(crate) fn non_negative(field: &str) -> bool {
    matches!(
        field,
        "quantity" | "unit_price" | "on_hand" | "daily_demand"
    )
}

/// The allowed values of `field` in `kind`, if it has a fixed set.
pub(crate) fn allowed(kind: EventKind, field: &str) -> Option<&'static [&'static str]> {
    kind.allowed_values()
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| *v)
}

pub(super) fn read_spec(
    node: &Node,
    kind: EventKind,
    field: &'static str,
    mapping: &str,
    ctx: &Ctx,
    d: &mut Diags,
) -> Option<ValueSpec> {
    let what = format!("{mapping}: {field}");
    if !is_map(node, &what, d) {
        return None;
    }
    let before = d.errors.len();
    let fields = entries(node, SPEC, d);
    let canon = canonical_type(field);
    let ty = match lookup(&fields, "type") {
        Some(n) => {
            let s = string(n, &format!("{what}: type"), d)?;
            let Some(t) = ValueType::parse(&s) else {
                d.push(n.pos, format!("{what}: unknown type {s:?} (string, integer, number, date, timestamp, po_line_refs)"));
                return None;
            };
            let fits = t == canon || (canon == ValueType::Number && t == ValueType::Integer);
            if !fits {
                d.push(
                    n.pos,
                    format!(
                        "{what}: type {s} does not fit the field, which is {} {}",
                        if canon == ValueType::Integer {
                            "an"
                        } else {
                            "a"
                        },
                        canon.as_str()
                    ),
                );
                return None;
            }
            t
        }
        None => canon,
    };
    let sources: Vec<_> = ["field", "const", "template"]
        .into_iter()
        .filter_map(|k| lookup(&fields, k).map(|n| (k, n)))
        .collect();
    if sources.len() != 1 {
        d.push(
            node.pos,
            format!("{what}: needs exactly one of field, const, template"),
        );
        return None;
    }
    let only_for = |key: &str, ok: bool, needs: &str, d: &mut Diags| {
        if let (Some(n), false) = (lookup(&fields, key), ok) {
            d.push(n.pos, format!("{what}: {key} is only for {needs}"));
        }
    };
    let is_time = matches!(ty, ValueType::Date | ValueType::Timestamp);
    only_for("formats", is_time, "type date or timestamp", d);
    only_for("timezone", ty == ValueType::Timestamp, "type timestamp", d);
    only_for(
        "offset_field",
        ty == ValueType::Timestamp,
        "type timestamp",
        d,
    );
    let numeric = matches!(ty, ValueType::Number | ValueType::Integer);
    only_for("decimal", numeric, "type number or integer", d);
    only_for("unit", ty == ValueType::Number, "type number", d);
    only_for("scale", ty == ValueType::Number, "type number", d);
    only_for(
        "separator",
        ty == ValueType::PoLineRefs,
        "type po_line_refs",
        d,
    );

    let (src_key, src_node) = sources[0];
    if src_key == "const" {
        for key in READING {
            if let Some(n) = lookup(&fields, key) {
                d.push(n.pos, format!("{what}: {key} cannot be used with const"));
            }
        }
    }
    let formats: Vec<String> = match lookup(&fields, "formats") {
        Some(n) => {
            let list = string_list(n, &format!("{what}: formats"), d);
            if list.is_empty() {
                d.push(n.pos, format!("{what}: formats must not be empty"));
            }
            for (f, pos) in &list {
                if let Err(e) = check_format(f, ty) {
                    d.push(*pos, format!("{what}: format {f:?} {e}"));
                }
            }
            list.into_iter().map(|(f, _)| f).collect()
        }
        None => Vec::new(),
    };
    let timezone =
        lookup(&fields, "timezone").and_then(|n| zone(n, &format!("{what}: timezone"), d));
    let offset_field = lookup(&fields, "offset_field").and_then(|n| {
        field_path(
            n,
            ctx.is_json,
            ctx.columns,
            &format!("{what}: offset_field"),
            d,
        )
    });
    let decimal_comma = match lookup(&fields, "decimal") {
        Some(n) => match &n.kind {
            NodeKind::Str(s) if s == "," => true,
            NodeKind::Str(s) if s == "." => false,
            _ => {
                d.push(n.pos, format!("{what}: decimal must be \",\" or \".\""));
                false
            }
        },
        None => false,
    };
    let mut factor = 1.0;
    if let Some(n) = lookup(&fields, "unit") {
        factor *= unit_factor(n, &what, d).unwrap_or(1.0);
    }
    if let Some(n) = lookup(&fields, "scale") {
        match number(n) {
            Some(s) if s.is_finite() && s > 0.0 => factor *= s,
            _ => d.push(n.pos, format!("{what}: scale must be a positive number")),
        }
    }
    let allowed_values = allowed(kind, field);
    let codes = lookup(&fields, "codes").and_then(|n| {
        let table = code_table(n, &what, ctx, d)?;
        if let Some(allowed) = allowed_values {
            let values: Vec<String> = match &table {
                CodeTable::Own { map, .. } => map.values().cloned().collect(),
                CodeTable::Builtin(b) => b.values().iter().map(|s| s.to_string()).collect(),
            };
            for v in values {
                if !allowed.contains(&v.as_str()) {
                    d.push(
                        n.pos,
                        format!(
                            "{what}: code table gives {v:?}, which is not a {kind} {field} ({})",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        Some(table)
    });
    let extract = lookup(&fields, "extract").and_then(|n| {
        let s = string(n, &format!("{what}: extract"), d)?;
        match Regex::new(&s) {
            Ok(r) => Some(r),
            Err(e) => {
                let msg = e.to_string();
                let last = msg
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                d.push(
                    n.pos,
                    format!("{what}: extract is not a valid regex: {last}"),
                );
                None
            }
        }
    });
    let literal = |n: &Node, key: &str, d: &mut Diags| -> Option<Value> {
        match literal_value(n, ty) {
            Ok(v) => {
                if let (Some(allowed), Value::String(s)) = (allowed_values, &v) {
                    if !allowed.contains(&s.as_str()) {
                        d.push(
                            n.pos,
                            format!(
                                "{what}: {key} {s:?} is not a {kind} {field} ({})",
                                allowed.join(", ")
                            ),
                        );
                        return None;
                    }
                }
                if non_negative(field) && v.as_f64().is_some_and(|x| x < 0.0) {
                    d.push(n.pos, format!("{what}: {key} must not be negative"));
                    return None;
                }
                Some(v)
            }
            Err(e) => {
                d.push(n.pos, format!("{what}: {key} {e}"));
                None
            }
        }
    };
    let default = lookup(&fields, "default").and_then(|n| literal(n, "default", d));
    let must = kind.required().contains(&field) || field == "event_time";
    let required = match lookup(&fields, "required") {
        Some(n) => match n.kind {
            NodeKind::Bool(false) if must => {
                d.push(
                    n.pos,
                    format!(
                        "{what}: {field} is required by {kind}; required: false is not allowed"
                    ),
                );
                true
            }
            NodeKind::Bool(b) => b || must,
            _ => {
                d.push(n.pos, format!("{what}: required must be true or false"));
                must
            }
        },
        None => must,
    };
    let separator = match lookup(&fields, "separator") {
        Some(n) => match &n.kind {
            NodeKind::Str(s) if !s.is_empty() && !s.contains('/') => s.clone(),
            _ => {
                d.push(
                    n.pos,
                    format!("{what}: separator must be a non-empty string without '/'"),
                );
                ",".into()
            }
        },
        None => ",".into(),
    };
    let source = match src_key {
        "field" => ValueSource::Field(field_list(src_node, ctx, &format!("{what}: field"), d)?),
        "const" => ValueSource::Const(literal(src_node, "const", d)?),
        _ => {
            let text = string(src_node, &format!("{what}: template"), d)?;
            match parse_template(&text) {
                Ok(parts) => {
                    let mut ok = true;
                    for part in &parts {
                        if let TemplatePart::Field(f) = part {
                            ok &=
                                check_field(f, src_node.pos, ctx, &format!("{what}: template"), d)
                                    .is_some();
                        }
                    }
                    if !ok {
                        return None;
                    }
                    ValueSource::Template(
                        parts
                            .into_iter()
                            .map(|p| match p {
                                TemplatePart::Field(f) if ctx.is_json => {
                                    let steps = parse_path(&f.text).unwrap_or_default();
                                    TemplatePart::Field(FieldPath {
                                        text: f.text,
                                        steps,
                                    })
                                }
                                p => p,
                            })
                            .collect(),
                    )
                }
                Err(e) => {
                    d.push(src_node.pos, format!("{what}: template {e}"));
                    return None;
                }
            }
        }
    };
    if d.errors.len() > before {
        return None;
    }
    Some(ValueSpec {
        source,
        ty,
        formats,
        timezone,
        offset_field,
        decimal_comma,
        factor,
        codes,
        extract,
        default,
        required,
        separator,
    })
}

/// `codes`: a table name (the feed's or a built-in) or an inline mapping.
pub(super) fn code_table(n: &Node, what: &str, ctx: &Ctx, d: &mut Diags) -> Option<CodeTable> {
    let table = match &n.kind {
        NodeKind::Str(name) => match (ctx.tables.get(name), Builtin::parse(name)) {
            (Some(t), _) => t.clone(),
            (None, Some(b)) => CodeTable::Builtin(b),
            (None, None) => {
                let mut names: Vec<&str> = ctx.tables.keys().map(String::as_str).collect();
                names.extend(Builtin::ALL.iter().map(|b| b.name()));
                d.push(
                    n.pos,
                    format!(
                        "{what}: no code table {name:?} (tables: {})",
                        names.join(", ")
                    ),
                );
                return None;
            }
        },
        NodeKind::Map(_) => CodeTable::Own {
            name: "inline".into(),
            map: read_table(n, &format!("{what}: codes"), d)?,
        },
        other => {
            d.push(
                n.pos,
                format!(
                    "{what}: codes must be a table name or a mapping, got {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    Some(table)
}

/// `unit: {from, to}` -> the multiplier.
pub(super) fn unit_factor(n: &Node, what: &str, d: &mut Diags) -> Option<f64> {
    if !is_map(n, &format!("{what}: unit"), d) {
        return None;
    }
    let fields = entries(n, &["from", "to"], d);
    let get_unit = |key: &str, d: &mut Diags| {
        let Some(v) = lookup(&fields, key) else {
            d.push(n.pos, format!("{what}: unit needs {key}"));
            return None;
        };
        let name = string(v, &format!("{what}: unit.{key}"), d)?;
        match codes::unit(&name) {
            Some(u) => Some(u),
            None => {
                let all: Vec<&str> = codes::UNITS.iter().map(|u| u.0).collect();
                d.push(
                    v.pos,
                    format!("{what}: unknown unit {name:?} (units: {})", all.join(" ")),
                );
                None
            }
        }
    };
    let from = get_unit("from", d);
    let to = get_unit("to", d);
    let ((fd, ff), (td, tf)) = (from?, to?);
    if fd != td {
        d.push(
            n.pos,
            format!("{what}: cannot convert {} to {}", fd.as_str(), td.as_str()),
        );
        return None;
    }
    Some(ff / tf)
}

/// A `const` / `default` literal as the canonical JSON value of type `ty`.
pub(super) fn literal_value(n: &Node, ty: ValueType) -> Result<Value, String> {
    let got = n.kind.describe();
    match (ty, &n.kind) {
        (ValueType::String, NodeKind::Str(s)) => Ok(Value::String(s.clone())),
        (ValueType::String, NodeKind::Int(i)) => Ok(Value::String(i.to_string())),
        (ValueType::String, NodeKind::Float(f)) if f.is_finite() => {
            Ok(Value::String(f.to_string()))
        }
        (ValueType::String, _) => Err(format!("must be a string, got {got}")),
        (ValueType::Integer, NodeKind::Int(i)) => Ok(Value::from(*i)),
        (ValueType::Integer, _) => Err(format!("must be an integer, got {got}")),
        (ValueType::Number, NodeKind::Int(i)) => Ok(Value::from(*i)),
        (ValueType::Number, NodeKind::Float(f)) if f.is_finite() => Ok(Value::from(*f)),
        (ValueType::Number, _) => Err(format!("must be a finite number, got {got}")),
        (ValueType::Date, NodeKind::Str(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|_| Value::String(s.clone()))
            .map_err(|_| format!("{s:?} is not a date YYYY-MM-DD")),
        (ValueType::Date, _) => Err(format!("must be a date YYYY-MM-DD, got {got}")),
        (ValueType::Timestamp, NodeKind::Str(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Value::String(map::format_timestamp(&t.with_timezone(&chrono::Utc))))
            .map_err(|_| format!("{s:?} is not an RFC 3339 timestamp")),
        (ValueType::Timestamp, _) => Err(format!("must be an RFC 3339 timestamp, got {got}")),
        (ValueType::PoLineRefs, NodeKind::Seq(items)) => {
            let mut out = Vec::new();
            for item in items {
                let NodeKind::Str(s) = &item.kind else {
                    return Err("must be a list of \"PO/LINE\" strings".into());
                };
                let r = map::po_line_ref(s).ok_or_else(|| format!("item {s:?} is not PO/LINE"))?;
                out.push(r);
            }
            Ok(Value::Array(out))
        }
        (ValueType::PoLineRefs, _) => {
            Err(format!("must be a list of \"PO/LINE\" strings, got {got}"))
        }
    }
}

/// Checks one field name: a JSON path must parse; a CSV column must be one of `columns` when
/// the feed has no header row.
pub(super) fn check_field(
    f: &FieldPath,
    pos: Pos,
    ctx: &Ctx,
    what: &str,
    d: &mut Diags,
) -> Option<Vec<Step>> {
    if ctx.is_json {
        return match parse_path(&f.text) {
            Ok(steps) => Some(steps),
            Err(e) => {
                d.push(pos, format!("{what}: {e}"));
                None
            }
        };
    }
    if let Some(cols) = ctx.columns {
        if !cols.contains(&f.text) {
            d.push(
                pos,
                format!("{what}: no column {:?} in format.columns", f.text),
            );
            return None;
        }
    }
    Some(Vec::new())
}

pub(super) fn field_path(
    n: &Node,
    is_json: bool,
    columns: Option<&[String]>,
    what: &str,
    d: &mut Diags,
) -> Option<FieldPath> {
    let text = scalar_text(n).filter(|s| !s.is_empty());
    let Some(text) = text else {
        d.push(n.pos, format!("{what} must be a non-empty string"));
        return None;
    };
    let tables = BTreeMap::new();
    let ctx = Ctx {
        is_json,
        columns,
        tables: &tables,
    };
    let mut f = FieldPath {
        text,
        steps: Vec::new(),
    };
    f.steps = check_field(&f, n.pos, &ctx, what, d)?;
    Some(f)
}

/// A field name or a list of them (first present).
pub(super) fn field_list(n: &Node, ctx: &Ctx, what: &str, d: &mut Diags) -> Option<Vec<FieldPath>> {
    let nodes: Vec<&Node> = match &n.kind {
        NodeKind::Seq(items) if !items.is_empty() => items.iter().collect(),
        NodeKind::Seq(_) => {
            d.push(n.pos, format!("{what} must name at least one field"));
            return None;
        }
        _ => vec![n],
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in nodes {
        match field_path(item, ctx.is_json, ctx.columns, what, d) {
            Some(f) => out.push(f),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
