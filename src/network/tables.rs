//! The network as Arrow tables, for indicator SQL beside the state tables.
//!
//! In: a [`Network`]. Out: one [`RecordBatch`] per table ([`Network::tables`]), or the empty
//! schemas to plan SQL at load ([`schemas`]). Strings are never null.
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `network_suppliers` | supplier | supplier, name (id when unnamed), tier, recovery_time_days (null: not declared) |
//! | `network_paths` | (source, supplier, part, depth), depth <= 5 | source, source_tier, supplier, tier, part, depth, share |
//! | `network_alternates` | (part, alternate) | part, primary_supplier, supplier, qualified, capacity_per_day, lead_time_days, rank (1 = shortest lead time, then largest capacity) |
//! | `network_parts` | part | part, supplier, unit_price (null: unknown), qualified_alternates, risk_class |

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::model::Network;

/// Depth of the roll-up paths in `network_paths`.
pub const PATH_MAX_DEPTH: u32 = 5;

/// Names of the network tables, in the order of [`schemas`].
pub const TABLE_NAMES: [&str; 4] = [
    "network_suppliers",
    "network_paths",
    "network_alternates",
    "network_parts",
];

fn field(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// The schemas of the network tables, named.
pub fn schemas() -> Vec<(&'static str, SchemaRef)> {
    use DataType::{Boolean, Float64, Int64, Utf8};
    let s = |fields: Vec<Field>| Arc::new(Schema::new(fields));
    vec![
        (
            TABLE_NAMES[0],
            s(vec![
                field("supplier", Utf8, false),
                field("name", Utf8, false),
                field("tier", Int64, false),
                field("recovery_time_days", Float64, true),
            ]),
        ),
        (
            TABLE_NAMES[1],
            s(vec![
                field("source", Utf8, false),
                field("source_tier", Int64, false),
                field("supplier", Utf8, false),
                field("tier", Int64, false),
                field("part", Utf8, false),
                field("depth", Int64, false),
                field("share", Float64, false),
            ]),
        ),
        (
            TABLE_NAMES[2],
            s(vec![
                field("part", Utf8, false),
                field("primary_supplier", Utf8, false),
                field("supplier", Utf8, false),
                field("qualified", Boolean, false),
                field("capacity_per_day", Float64, false),
                field("lead_time_days", Float64, false),
                field("rank", Int64, false),
            ]),
        ),
        (
            TABLE_NAMES[3],
            s(vec![
                field("part", Utf8, false),
                field("supplier", Utf8, false),
                field("unit_price", Float64, true),
                field("qualified_alternates", Int64, false),
                field("risk_class", Utf8, false),
            ]),
        ),
    ]
}

/// Empty network tables (plan SQL at load, or no network configured).
pub fn empty() -> Vec<(&'static str, RecordBatch)> {
    schemas()
        .into_iter()
        .map(|(n, s)| (n, RecordBatch::new_empty(s)))
        .collect()
}

fn strings<'a>(it: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(it))
}

fn ints(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(it))
}

fn floats(it: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(it))
}

fn opt_floats(it: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(it.collect::<Float64Array>())
}

impl Network {
    /// The network tables, in the order of [`schemas`].
    pub fn tables(&self) -> Vec<(&'static str, RecordBatch)> {
        self.tables_to_depth(PATH_MAX_DEPTH)
    }

    /// The network tables with roll-up paths up to `max_depth` links.
    pub fn tables_to_depth(&self, max_depth: u32) -> Vec<(&'static str, RecordBatch)> {
        match self.try_tables(max_depth) {
            Ok(t) => t,
            Err(e) => {
                // Columns are built from the schemas above: a mismatch is a bug, not bad data.
                tracing::error!(error = %e, "Network tables do not match their schemas.");
                empty()
            }
        }
    }

    fn try_tables(&self, max_depth: u32) -> Result<Vec<(&'static str, RecordBatch)>, ArrowError> {
        let schemas = schemas();
        let mut out = Vec::new();

        let s: Vec<_> = self.suppliers.values().collect();
        out.push(RecordBatch::try_new(
            schemas[0].1.clone(),
            vec![
                strings(s.iter().map(|s| s.id.as_str())),
                strings(s.iter().map(|s| s.name.as_deref().unwrap_or(&s.id))),
                ints(s.iter().map(|s| i64::from(s.tier))),
                opt_floats(s.iter().map(|s| s.recovery_days())),
            ],
        )?);

        let p = self.paths(max_depth);
        out.push(RecordBatch::try_new(
            schemas[1].1.clone(),
            vec![
                strings(p.iter().map(|r| r.source.as_str())),
                ints(p.iter().map(|r| i64::from(r.source_tier))),
                strings(p.iter().map(|r| r.supplier.as_str())),
                ints(p.iter().map(|r| i64::from(r.tier))),
                strings(p.iter().map(|r| r.part.as_str())),
                ints(p.iter().map(|r| i64::from(r.depth))),
                floats(p.iter().map(|r| r.share)),
            ],
        )?);

        // (part, primary, alternate, rank) in part order, ranked within each part.
        let mut alts = Vec::new();
        for part in self.parts.values() {
            let mut ranked: Vec<_> = part.alternates.iter().collect();
            ranked.sort_by(|a, b| {
                a.lead_time
                    .cmp(&b.lead_time)
                    .then(b.capacity_per_day.total_cmp(&a.capacity_per_day))
                    .then_with(|| a.supplier.cmp(&b.supplier))
            });
            for (i, a) in ranked.into_iter().enumerate() {
                alts.push((part, a, i as i64 + 1));
            }
        }
        out.push(RecordBatch::try_new(
            schemas[2].1.clone(),
            vec![
                strings(alts.iter().map(|(p, _, _)| p.id.as_str())),
                strings(alts.iter().map(|(p, _, _)| p.supplier.as_str())),
                strings(alts.iter().map(|(_, a, _)| a.supplier.as_str())),
                Arc::new(BooleanArray::from(
                    alts.iter().map(|(_, a, _)| a.qualified).collect::<Vec<_>>(),
                )),
                floats(alts.iter().map(|(_, a, _)| a.capacity_per_day)),
                floats(alts.iter().map(|(_, a, _)| a.lead_time_days())),
                ints(alts.iter().map(|(_, _, r)| *r)),
            ],
        )?);

        let c = self.concentration();
        out.push(RecordBatch::try_new(
            schemas[3].1.clone(),
            vec![
                strings(c.iter().map(|c| c.part.as_str())),
                strings(c.iter().map(|c| c.supplier.as_str())),
                opt_floats(
                    c.iter()
                        .map(|c| self.part(&c.part).and_then(|p| p.unit_price)),
                ),
                ints(c.iter().map(|c| c.qualified_alternates as i64)),
                strings(c.iter().map(|c| c.risk_class.as_str())),
            ],
        )?);

        Ok(TABLE_NAMES.into_iter().zip(out).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::load_str;
    use arrow::util::pretty::pretty_format_batches;
    use std::path::Path;

    const NET: &str = "\
suppliers:
  - { id: A, name: Alpha, tier: 1, recovery_time: 21d }
  - { id: B, tier: 1 }
  - { id: C, tier: 1 }
  - { id: X, tier: 2, recovery_time: 36h }
links:
  - { from: X, to: A, parts: [P1], share: 0.5 }
parts:
  - id: P1
    supplier: A
    unit_price: 2.5
    alternates:
      - { supplier: C, capacity_per_day: 50, lead_time: 14d }
      - { supplier: B, capacity_per_day: 100, lead_time: 14d }
      - { supplier: X, qualified: false, capacity_per_day: 500, lead_time: 2d }
  - { id: P2, supplier: B }
";

    fn render(net: &Network, name: &str) -> String {
        let tables = net.tables();
        let (_, batch) = tables.iter().find(|(n, _)| *n == name).unwrap();
        pretty_format_batches(std::slice::from_ref(batch))
            .unwrap()
            .to_string()
    }

    #[test]
    fn tables_hold_the_network() {
        let net = load_str(Path::new("n.yaml"), NET).unwrap();
        assert_eq!(
            render(&net, "network_suppliers"),
            "\
+----------+-------+------+--------------------+
| supplier | name  | tier | recovery_time_days |
+----------+-------+------+--------------------+
| A        | Alpha | 1    | 21.0               |
| B        | B     | 1    |                    |
| C        | C     | 1    |                    |
| X        | X     | 2    | 1.5                |
+----------+-------+------+--------------------+"
        );
        assert_eq!(
            render(&net, "network_paths"),
            "\
+--------+-------------+----------+------+------+-------+-------+
| source | source_tier | supplier | tier | part | depth | share |
+--------+-------------+----------+------+------+-------+-------+
| X      | 2           | A        | 1    | P1   | 1     | 0.5   |
+--------+-------------+----------+------+------+-------+-------+"
        );
        assert_eq!(
            render(&net, "network_alternates"),
            "\
+------+------------------+----------+-----------+------------------+----------------+------+
| part | primary_supplier | supplier | qualified | capacity_per_day | lead_time_days | rank |
+------+------------------+----------+-----------+------------------+----------------+------+
| P1   | A                | X        | false     | 500.0            | 2.0            | 1    |
| P1   | A                | B        | true      | 100.0            | 14.0           | 2    |
| P1   | A                | C        | true      | 50.0             | 14.0           | 3    |
+------+------------------+----------+-----------+------------------+----------------+------+"
        );
        assert_eq!(
            render(&net, "network_parts"),
            "\
+------+----------+------------+----------------------+---------------+
| part | supplier | unit_price | qualified_alternates | risk_class    |
+------+----------+------------+----------------------+---------------+
| P1   | A        | 2.5        | 2                    | multi_source  |
| P2   | B        |            | 0                    | single_source |
+------+----------+------------+----------------------+---------------+"
        );
    }

    #[test]
    fn schemas_match_the_tables_and_empty_tables_plan() {
        let net = load_str(Path::new("n.yaml"), NET).unwrap();
        for ((name, schema), (tname, batch)) in schemas().into_iter().zip(net.tables()) {
            assert_eq!(name, tname);
            assert_eq!(batch.schema(), schema);
        }
        let empty = Network::default().tables();
        assert_eq!(empty.len(), 4);
        assert!(empty.iter().all(|(_, b)| b.num_rows() == 0));
    }
}
