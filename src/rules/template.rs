//! The minijinja environment shared by rule validation and the alert engine.
//!
//! In: annotation template sources. Out: an [`Environment`] with chainwatch's filters
//! (`percent`, `days`, plus minijinja's builtins such as `round`), a compile-and-dry-run check
//! used when rule files are loaded, and [`rfc3339`] for the `active_at` template variable.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, ErrorKind, Value};

use super::AlertRule;

/// An environment with chainwatch's filters and no HTML escaping (annotations are plain text).
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("percent", percent);
    env.add_filter("days", days);
    env
}

/// The annotation templates of a rule set, compiled once, named `<alert>/<annotation>`.
#[derive(Debug, Default)]
pub struct Templates {
    /// The compiled templates.
    env: Environment<'static>,
    /// Templates that did not compile (only for rule sets built by hand): name -> error.
    errors: BTreeMap<String, String>,
}

impl Templates {
    /// Compiles every annotation of `rules`; a template that fails is remembered, not fatal.
    pub fn compile<'a>(rules: impl IntoIterator<Item = &'a AlertRule>) -> Self {
        let mut templates = Templates {
            env: environment(),
            errors: BTreeMap::new(),
        };
        for rule in rules {
            for (key, source) in &rule.annotations {
                let name = format!("{}/{key}", rule.name);
                if let Err(err) = templates
                    .env
                    .add_template_owned(name.clone(), source.clone())
                {
                    templates.errors.insert(name, err.to_string());
                }
            }
        }
        templates
    }

    /// Renders every annotation of `rule` with `ctx`; one that fails is its raw text followed by
    /// ` (template error: ...)`.
    pub fn render(&self, rule: &AlertRule, ctx: &Value) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, source) in &rule.annotations {
            let name = format!("{}/{key}", rule.name);
            let rendered = match self.errors.get(&name) {
                Some(err) => Err(err.clone()),
                None => self
                    .env
                    .get_template(&name)
                    .and_then(|t| t.render(ctx))
                    .map_err(|e| e.to_string()),
            };
            let text = rendered.unwrap_or_else(|err| format!("{source} (template error: {err})"));
            out.insert(key.clone(), text);
        }
        out
    }
}

/// `0.873 | percent` -> `87.3%` (one decimal, a trailing `.0` dropped).
pub fn percent(ratio: f64) -> String {
    format!("{}%", one_decimal(ratio * 100.0))
}

/// `3.24 | days` -> `3.2 days`; exactly one reads `1 day`.
pub fn days(days: f64) -> String {
    let text = one_decimal(days);
    let unit = if text == "1" { "day" } else { "days" };
    format!("{text} {unit}")
}

fn one_decimal(x: f64) -> String {
    let text = format!("{x:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Compiles `source` and renders it once with placeholder values, so that syntax errors and
/// unknown filters, tests or functions are found at load time. Errors that depend on real data
/// (an undefined column, a type mismatch) are left to render time.
pub(crate) fn check(
    env: &Environment<'_>,
    name: &str,
    source: &str,
) -> Result<(), minijinja::Error> {
    let template = env.template_from_named_str(name, source)?;
    let empty = Value::from_serialize(std::collections::BTreeMap::<String, String>::new());
    let ctx = minijinja::context! {
        labels => empty.clone(),
        row => empty,
        value => 0.0,
        threshold => 0.0,
        severity => "warning",
        alertname => "",
        indicator => "",
        active_at => rfc3339(0),
    };
    match template.render(ctx) {
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::SyntaxError
            ) =>
        {
            Err(err)
        }
        _ => Ok(()),
    }
}

/// Milliseconds since the Unix epoch -> RFC 3339 in UTC (`2024-03-01T06:00:00Z`, with `.mmm`
/// when the time is not a whole second). Works for any i64, before 1970 too, and never panics.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
    }
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_days_filters() {
        assert_eq!(percent(0.873), "87.3%");
        assert_eq!(percent(0.9), "90%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(-0.0001), "0%");
        assert_eq!(days(3.24), "3.2 days");
        assert_eq!(days(1.0), "1 day");
        assert_eq!(days(0.5), "0.5 days");
        let env = environment();
        let out = env
            .render_str(
                "{{ v | percent }} {{ d | days }} {{ x | round(1) }} <{{ s }}>",
                minijinja::context! { v => 0.5, d => 2, x => 2.345, s => "&" },
            )
            .unwrap();
        assert_eq!(out, "50% 2 days 2.3 <&>");
    }

    #[test]
    fn check_reports_syntax_and_unknown_filters_only() {
        let env = environment();
        assert!(check(&env, "summary", "{{ labels.supplier }} {{ row.x | round }}").is_ok());
        let err = check(&env, "summary", "{{ value | percent }").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SyntaxError);
        let err = check(&env, "summary", "{{ value | percentage }}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown filter: filter percentage is unknown (in summary:1)"
        );
    }

    #[test]
    fn rfc3339_formats_event_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_272_800_000), "2024-03-01T06:00:00Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert!(!rfc3339(i64::MIN).is_empty());
        assert!(!rfc3339(i64::MAX).is_empty());
    }
}
