//! The little languages inside a definition -> parsed values or a message: strftime
//! formats (checked against chrono), time zones, `{field}` templates and JSON paths.

use super::*;

/// Checks a strftime format: chrono must know every specifier, and a value written with it must
/// read back (so a date format holds year, month and day).
pub(crate) fn check_format(f: &str, ty: ValueType) -> Result<(), String> {
    if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
        return Err("is not a strftime format chrono can use".into());
    }
    let offset = FixedOffset::east_opt(3600).ok_or("offset")?;
    let sample = offset
        .with_ymd_and_hms(2026, 11, 28, 13, 45, 30)
        .single()
        .ok_or("sample")?;
    let mut text = String::new();
    if write!(text, "{}", sample.format_with_items(StrftimeItems::new(f))).is_err() {
        return Err("is not a strftime format chrono can use".into());
    }
    let formats = [f.to_string()];
    match ty {
        ValueType::Date => match map::parse_date(&text, &formats) {
            Some(d) if d == sample.date_naive() => Ok(()),
            _ => Err("does not hold a full date (year, month and day)".into()),
        },
        _ => {
            // A format with a time must read it whole: chrono would otherwise fall back to the
            // date alone and `%d.%m.%Y %H` would silently read midnight.
            let has_time = StrftimeItems::new(f).any(|i| {
                matches!(
                    i,
                    Item::Numeric(
                        Numeric::Hour | Numeric::Hour12 | Numeric::Minute | Numeric::Second,
                        _
                    )
                )
            });
            let full = chrono::DateTime::parse_from_str(&text, f).is_ok()
                || chrono::NaiveDateTime::parse_from_str(&text, f).is_ok();
            match map::parse_timestamp(&text, &formats, &Zone::utc()) {
                Ok(_) if full || !has_time => Ok(()),
                _ => Err("does not hold a full date, or its time is incomplete".into()),
            }
        }
    }
}

/// An IANA zone name or a fixed offset `+08:00`.
pub(crate) fn parse_zone(s: &str) -> Option<Zone> {
    if let Some(off) = map::parse_offset(s) {
        return Some(Zone::Fixed(off));
    }
    s.parse::<chrono_tz::Tz>().ok().map(Zone::Tz)
}

pub(super) fn zone(n: &Node, what: &str, d: &mut Diags) -> Option<Zone> {
    let s = string(n, what, d)?;
    let z = parse_zone(&s);
    if z.is_none() {
        d.push(n.pos, format!("{what}: unknown time zone {s:?} (an IANA name such as Europe/Berlin, or an offset such as +08:00)"));
    }
    z
}

/// `{name}` placeholders; `{{` and `}}` are literal braces.
pub(crate) fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') => return Err(format!("{text:?}: '{{' inside a placeholder")),
                        Some(c) => name.push(c),
                        None => return Err(format!("{text:?}: unclosed placeholder {{{name}")),
                    }
                }
                if name.trim().is_empty() {
                    return Err(format!("{text:?}: empty placeholder {{}}"));
                }
                if !lit.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut lit)));
                }
                parts.push(TemplatePart::Field(FieldPath {
                    text: name,
                    steps: Vec::new(),
                }));
            }
            '}' => {
                return Err(format!(
                    "{text:?}: '}}' without '{{' (write }}}} for a brace)"
                ))
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(TemplatePart::Text(lit));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Field(_))) {
        return Err(format!(
            "{text:?} has no {{field}} placeholder (use const for a fixed value)"
        ));
    }
    Ok(parts)
}

/// A JSON path: `a.b[0].c`, `[2].x`; keys may hold any character but `.`, `[` and `]`.
pub(crate) fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = text;
    let mut first = true;
    loop {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        if key.contains(']') {
            return Err(format!("path {text:?}: ']' without '['"));
        }
        if key.is_empty() && !(first && rest.starts_with('[')) {
            return Err(format!("path {text:?} has an empty key"));
        }
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        rest = &rest[end..];
        while let Some(after) = rest.strip_prefix('[') {
            let close = after
                .find(']')
                .ok_or_else(|| format!("path {text:?}: unclosed '['"))?;
            let index: usize = after[..close].parse().map_err(|_| {
                format!("path {text:?}: [{}] is not an array index", &after[..close])
            })?;
            steps.push(Step::Index(index));
            rest = &after[close + 1..];
        }
        first = false;
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None if rest.is_empty() => return Ok(steps),
            None => {
                return Err(format!(
                    "path {text:?}: expected '.' or '[' before {rest:?}"
                ))
            }
        }
    }
}
