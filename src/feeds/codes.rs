//! Built-in code tables and the unit conversion table of feed definitions.
//!
//! In: a code (`X4`, `urn:epcglobal:cbv:bizstep:shipping`) or a unit name (`lb`). Out: the
//! canonical milestone status, or the unit's dimension and factor. Each table entry carries its
//! meaning so docs/feeds.md can show the tables (a unit test keeps the docs in step).
//!
//! Choices (they matter for alerts, so they are written down):
//! - X12 214 AT7 status codes that only announce something (estimated delivery `AG`, estimated
//!   arrival `X2`, estimated departure `C1`, acknowledged `XB`) map to `in_transit`: they are not
//!   moves, but they say the shipment is on its way. Exceptions that stop the goods map to `held`
//!   (damaged, refused, returned, customs / bad-order holds); ones that postpone delivery to
//!   `delayed`. Codes that are neither a move nor a status of the goods (cancelled, paperwork)
//!   are left out, so they reject (invalid_value) unless the field has a `default`.
//! - GS1 CBV bizSteps before the goods leave (commissioning, packing, picking, loading,
//!   staging_outbound) map to `in_transit`, for the same reason; receiving / accepting at the
//!   consignee mean `delivered`; inspecting and holding mean `held`. Steps that are not logistics
//!   (retail_selling, destroying, killing, ...) are left out.

/// A built-in code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// X12 214 AT7-01 shipment status codes -> milestone status.
    X12_214,
    /// GS1 CBV bizStep (short name, URN or web URI) -> milestone status.
    EpcisBizstep,
}

impl Builtin {
    /// Every built-in table.
    pub const ALL: [Builtin; 2] = [Builtin::X12_214, Builtin::EpcisBizstep];

    /// The name used in definition files.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::X12_214 => "x12_214",
            Builtin::EpcisBizstep => "epcis_bizstep",
        }
    }

    /// The table by its name.
    pub fn parse(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Code, canonical value, meaning.
    pub fn entries(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Builtin::X12_214 => X12_214,
            Builtin::EpcisBizstep => BIZSTEPS,
        }
    }

    /// The canonical values the table can produce.
    pub fn values(self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.entries().iter().map(|e| e.1).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Translates a trimmed code: X12 codes case-insensitively; bizSteps after stripping the
    /// URN (`urn:epcglobal:cbv:bizstep:`) or web URI (`.../BizStep-`) prefix.
    pub fn lookup(self, code: &str) -> Option<&'static str> {
        let key = match self {
            Builtin::X12_214 => code.to_ascii_uppercase(),
            Builtin::EpcisBizstep => bizstep_name(code).to_ascii_lowercase(),
        };
        self.entries()
            .iter()
            .find(|(c, _, _)| *c == key)
            .map(|(_, v, _)| *v)
    }
}

/// The short name of a bizStep written as a short name, a CBV 1.x URN or a CBV 2.0 web URI.
fn bizstep_name(code: &str) -> &str {
    const URN: &str = "urn:epcglobal:cbv:bizstep:";
    if code.len() >= URN.len() && code[..URN.len()].eq_ignore_ascii_case(URN) {
        return &code[URN.len()..];
    }
    let lower = code.to_ascii_lowercase();
    match lower.find("/bizstep-") {
        Some(i) if lower.starts_with("http://") || lower.starts_with("https://") => {
            &code[i + "/bizstep-".len()..]
        }
        _ => code,
    }
}

/// X12 214 AT7-01 Shipment Status Code (element 1650), the ones that say where the goods are.
const X12_214: &[(&str, &str, &str)] = &[
    (
        "AF",
        "departed",
        "Carrier departed pick-up location with shipment",
    ),
    ("P1", "departed", "Departed terminal location"),
    ("CD", "departed", "Carrier departed delivery location"),
    ("OA", "departed", "Out-gate"),
    (
        "RL",
        "departed",
        "Rail departure from origin intermodal ramp",
    ),
    ("X3", "arrived", "Arrived at pick-up location"),
    ("X8", "arrived", "Arrived at pick-up location loading dock"),
    ("X4", "arrived", "Arrived at terminal location"),
    ("X1", "arrived", "Arrived at delivery location"),
    ("X5", "arrived", "Arrived at delivery location loading dock"),
    ("I1", "arrived", "In-gate"),
    (
        "AR",
        "arrived",
        "Rail arrival at destination intermodal ramp",
    ),
    ("K1", "arrived", "Arrived at customs"),
    (
        "Y1",
        "arrived",
        "Arrived at the multiple country consolidation hub",
    ),
    ("S1", "arrived", "Trailer spotted at consignee's location"),
    ("X6", "in_transit", "En route to delivery location"),
    ("J1", "in_transit", "Delivered to connecting line"),
    ("R1", "in_transit", "Received from prior carrier"),
    ("AN", "in_transit", "Diverted to air carrier"),
    ("AI", "in_transit", "Shipment has been reconsigned"),
    ("L1", "in_transit", "Loading"),
    ("CP", "in_transit", "Completed loading at pick-up location"),
    ("CL", "in_transit", "Trailer closed out"),
    ("AM", "in_transit", "Loaded on truck"),
    ("AJ", "in_transit", "Tendered for delivery"),
    ("AV", "in_transit", "Available for delivery"),
    (
        "AG",
        "in_transit",
        "Estimated delivery (a notice, not a move)",
    ),
    (
        "X2",
        "in_transit",
        "Estimated date/time of arrival at consignee (a notice)",
    ),
    (
        "C1",
        "in_transit",
        "Estimated to depart terminal location (a notice)",
    ),
    ("XB", "in_transit", "Shipment acknowledged (a notice)"),
    ("RH", "in_transit", "Shipment conveyance released from hold"),
    (
        "BR",
        "in_transit",
        "Shipment conveyance released from bad order",
    ),
    ("SD", "delayed", "Shipment delayed"),
    ("AP", "delayed", "Delivery not completed"),
    ("AH", "delayed", "Attempted delivery"),
    ("A9", "held", "Shipment damaged"),
    ("A7", "held", "Refused by consignee"),
    ("A3", "held", "Shipment returned to shipper"),
    ("BO", "held", "Shipment conveyance reported bad order"),
    ("PR", "held", "U.S. customs hold at in-bond location"),
    ("BC", "held", "Storage in transit"),
    (
        "D1",
        "delivered",
        "Completed unloading at delivery location",
    ),
];

/// GS1 CBV 2.0 business steps that describe goods moving between parties.
const BIZSTEPS: &[(&str, &str, &str)] = &[
    (
        "shipping",
        "departed",
        "Shipping: the goods leave the sender",
    ),
    ("departing", "departed", "Departing a place en route"),
    (
        "void_shipping",
        "in_transit",
        "A shipping event is voided (no move)",
    ),
    ("arriving", "arrived", "Arriving at a place en route"),
    ("unloading", "arrived", "Unloading from a conveyance"),
    ("storing", "arrived", "Storing at a place en route"),
    ("receiving", "delivered", "Receiving at the consignee"),
    (
        "accepting",
        "delivered",
        "Accepting custody at the consignee",
    ),
    (
        "stocking",
        "delivered",
        "Stocking into the consignee's inventory",
    ),
    ("transporting", "in_transit", "Transporting"),
    ("collecting", "in_transit", "Collecting"),
    ("consigning", "in_transit", "Handing over to a carrier"),
    (
        "entering_exiting",
        "in_transit",
        "Entering or exiting a place",
    ),
    (
        "loading",
        "in_transit",
        "Loading onto a conveyance (before departure)",
    ),
    (
        "staging_outbound",
        "in_transit",
        "Staging for shipment (before departure)",
    ),
    (
        "commissioning",
        "in_transit",
        "Commissioning (before departure)",
    ),
    ("packing", "in_transit", "Packing (before departure)"),
    ("picking", "in_transit", "Picking (before departure)"),
    ("holding", "held", "Holding: the goods are held"),
    ("inspecting", "held", "Inspecting (e.g. customs inspection)"),
    ("sampling", "held", "Sampling for inspection"),
];

/// A physical dimension of units: only units of one dimension convert into each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// kg g t lb oz.
    Mass,
    /// m cm mm km ft in.
    Length,
    /// l ml m3 gal.
    Volume,
    /// each pcs dozen pair hundred thousand.
    Count,
}

impl Dimension {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Mass => "mass",
            Dimension::Length => "length",
            Dimension::Volume => "volume",
            Dimension::Count => "count",
        }
    }
}

/// Unit, dimension, size in the dimension's base unit (kg, m, l, each).
pub const UNITS: &[(&str, Dimension, f64)] = &[
    ("kg", Dimension::Mass, 1.0),
    ("g", Dimension::Mass, 0.001),
    ("t", Dimension::Mass, 1000.0),
    ("lb", Dimension::Mass, 0.453_592_37),
    ("oz", Dimension::Mass, 0.028_349_523_125),
    ("m", Dimension::Length, 1.0),
    ("cm", Dimension::Length, 0.01),
    ("mm", Dimension::Length, 0.001),
    ("km", Dimension::Length, 1000.0),
    ("ft", Dimension::Length, 0.3048),
    ("in", Dimension::Length, 0.0254),
    ("l", Dimension::Volume, 1.0),
    ("ml", Dimension::Volume, 0.001),
    ("m3", Dimension::Volume, 1000.0),
    ("gal", Dimension::Volume, 3.785_411_784),
    ("each", Dimension::Count, 1.0),
    ("pcs", Dimension::Count, 1.0),
    ("dozen", Dimension::Count, 12.0),
    ("pair", Dimension::Count, 2.0),
    ("hundred", Dimension::Count, 100.0),
    ("thousand", Dimension::Count, 1000.0),
];

/// A unit's dimension and size in its base unit.
pub fn unit(name: &str) -> Option<(Dimension, f64)> {
    UNITS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, f)| (*d, *f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn every_code_maps_to_an_allowed_milestone_status() {
        let allowed = EventKind::Milestone.allowed_values()[0].1;
        for b in Builtin::ALL {
            for (code, status, _) in b.entries() {
                assert!(allowed.contains(status), "{}: {code} -> {status}", b.name());
            }
            let mut codes: Vec<_> = b.entries().iter().map(|e| e.0).collect();
            codes.sort_unstable();
            let n = codes.len();
            codes.dedup();
            assert_eq!(codes.len(), n, "{}: duplicate code", b.name());
        }
    }

    #[test]
    fn x12_codes_the_brief_names_are_there() {
        for code in [
            "AF", "P1", "CD", "X3", "X4", "X6", "X1", "X5", "X2", "AG", "D1", "SD", "A9", "AP",
            "AH", "K1", "OA", "I1", "J1",
        ] {
            assert!(Builtin::X12_214.lookup(code).is_some(), "{code}");
        }
        assert_eq!(Builtin::X12_214.lookup("d1"), Some("delivered"));
        assert_eq!(Builtin::X12_214.lookup("SD"), Some("delayed"));
        assert_eq!(Builtin::X12_214.lookup("CA"), None);
    }

    #[test]
    fn bizsteps_in_every_spelling() {
        let b = Builtin::EpcisBizstep;
        assert_eq!(b.lookup("shipping"), Some("departed"));
        assert_eq!(
            b.lookup("urn:epcglobal:cbv:bizstep:receiving"),
            Some("delivered")
        );
        assert_eq!(
            b.lookup("https://ref.gs1.org/cbv/BizStep-arriving"),
            Some("arrived")
        );
        assert_eq!(b.lookup("URN:EPCGLOBAL:CBV:BIZSTEP:Holding"), Some("held"));
        assert_eq!(b.lookup("retail_selling"), None);
        assert_eq!(b.lookup("urn:acme:bizstep:gate_check"), None);
        assert_eq!(b.lookup(""), None);
    }

    /// docs/feeds.md shows every built-in code with its status, and every unit.
    #[test]
    fn docs_show_every_code_and_unit() {
        let docs = include_str!("../../docs/feeds.md");
        for b in Builtin::ALL {
            for (code, status, _) in b.entries() {
                let row = format!("| `{code}` | `{status}` |");
                assert!(docs.contains(&row), "{}: {row}", b.name());
            }
        }
        for (name, _, _) in UNITS {
            assert!(docs.contains(&format!("`{name}` ")), "unit {name}");
        }
    }

    #[test]
    fn units_have_distinct_names() {
        assert_eq!(unit("lb"), Some((Dimension::Mass, 0.453_592_37)));
        assert_eq!(unit("furlong"), None);
        let mut names: Vec<_> = UNITS.iter().map(|u| u.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), UNITS.len());
    }
}
