//! The synthetic supply network the simulator runs on.
//!
//! In: a [`SimConfig`] (how many suppliers, sites and parts) and the simulator's seeded RNG.
//! Out: the public [`Network`] (suppliers with tier and country, parts with their sites,
//! demand and approved alternates, sites, lanes, tier-2 -> tier-1 links) and the private
//! [`Topology`] of indices the engine iterates over (part-sites and supplier-sites).

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::SimConfig;

/// Transport mode of a lane, as written in `shipment_created.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Container ship, port to port; the bulk of intercontinental volume.
    Ocean,
    /// Air freight: short transit, used for a minority of lanes.
    Air,
    /// Truck, within a region.
    Road,
    /// Train, within a region.
    Rail,
}

impl Mode {
    /// The value used in event payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ocean => "ocean",
            Mode::Air => "air",
            Mode::Road => "road",
            Mode::Rail => "rail",
        }
    }
}

/// A supplier of tier 1 (ships to our sites) or tier 2 (supplies tier-1 suppliers).
#[derive(Debug, Clone, PartialEq)]
pub struct Supplier {
    /// `SUP-T1-001`, `SUP-T2-001`, ...
    pub id: String,
    /// Display name, e.g. `Ningbo Castings Co., Ltd.`.
    pub name: String,
    /// 1 or 2.
    pub tier: u8,
    /// ISO 3166 alpha-2 country code.
    pub country: String,
    /// UN/LOCODE of the supplier's plant (origin of road and rail lanes).
    pub locode: String,
    /// UN/LOCODE of the port or airport its ocean and air lanes leave from.
    pub port: String,
    /// Quoted lead time: promised date = order date + this many days.
    pub lead_time_days: u32,
}

/// A site of ours that consumes parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// `PLANT-DE1`, `PLANT-US1`, ...
    pub id: String,
    /// ISO 3166 alpha-2 country code.
    pub country: String,
    /// UN/LOCODE of the plant itself (location of `delivered` milestones).
    pub locode: String,
    /// UN/LOCODE of the port that ocean and air shipments to this site arrive at.
    pub port: String,
}

/// A qualified second source of a part.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternate {
    /// Tier-1 supplier id of the alternate.
    pub supplier: String,
    /// Units per day the alternate could deliver.
    pub capacity_per_day: f64,
    /// Lead time of the alternate in days.
    pub lead_time_days: u32,
}

/// Where a part is consumed and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct PartUse {
    /// Site id.
    pub site: String,
    /// Baseline demand in units per day (the simulation adds noise and disruptions).
    pub daily_demand: f64,
}

/// A purchased part, made by one tier-1 supplier.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// `P-1001`, `P-1002`, ...
    pub id: String,
    /// Short description, e.g. `wire harness`.
    pub description: String,
    /// The tier-1 supplier all POs for this part go to.
    pub supplier: String,
    /// Price per unit.
    pub unit_price: f64,
    /// The sites that consume it (at least one).
    pub uses: Vec<PartUse>,
    /// Approved alternate sources; empty means single source.
    pub alternates: Vec<Alternate>,
}

/// The route shipments take from one supplier to one site.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// Tier-1 supplier id.
    pub supplier: String,
    /// Site id.
    pub site: String,
    /// Transport mode.
    pub mode: Mode,
    /// UN/LOCODE where shipments depart.
    pub origin: String,
    /// Transshipment hub, if the lane has one.
    pub via: Option<String>,
    /// UN/LOCODE of arrival (the site's port; the plant itself for road and rail).
    pub destination: String,
    /// Carrier code, e.g. `MAERSK`.
    pub carrier: String,
    /// Port-to-port (or door-to-door for road and rail) travel time in days, without dwell.
    pub travel_days: f64,
    /// Nominal shipping-to-delivery time in days, dwell times included.
    pub transit_days: f64,
}

/// A tier-2 supplier feeding a tier-1 supplier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierLink {
    /// Tier-2 supplier id.
    pub tier2: String,
    /// Tier-1 supplier id.
    pub tier1: String,
    /// The tier-1's parts that need this tier-2's input.
    pub parts: Vec<String>,
    /// Share (0..1] of that input the tier-2 supplies.
    pub share: f64,
}

/// The whole simulated network, as a risk model would load it from master data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Network {
    /// Tier-1 suppliers first (index order = id order), then tier-2.
    pub suppliers: Vec<Supplier>,
    /// All parts, in id order.
    pub parts: Vec<Part>,
    /// All sites, in id order of creation.
    pub sites: Vec<Site>,
    /// One lane per (tier-1 supplier, site) pair that has demand.
    pub lanes: Vec<Lane>,
    /// Which tier-2 supplies which tier-1, for which parts, with which share.
    pub tier_links: Vec<TierLink>,
}

/// One part consumed at one site: the unit of inventory and ordering.
#[derive(Debug, Clone)]
pub(super) struct PartSite {
    pub part: usize,
    pub site: usize,
    pub supplier: usize,
    pub lane: usize,
    pub demand: f64,
}

/// One (tier-1 supplier, site) pair: the unit of purchase orders and shipments.
#[derive(Debug, Clone)]
pub(super) struct SupplierSite {
    pub supplier: usize,
    pub site: usize,
    pub lane: usize,
    pub part_sites: Vec<usize>,
    /// A PO is considered every `review_days` days ...
    pub review_days: i64,
    /// ... on the days `d` with `d % review_days == review_offset`.
    pub review_offset: i64,
}

/// Index tables the engine iterates over.
#[derive(Debug, Clone, Default)]
pub(super) struct Topology {
    pub part_sites: Vec<PartSite>,
    pub supplier_sites: Vec<SupplierSite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Asia,
    Europe,
    Americas,
}

struct Country {
    code: &'static str,
    region: Region,
    cities: &'static [(&'static str, &'static str)],
    port: &'static str,
    legal: &'static str,
    weight: u32,
}

const COUNTRIES: &[Country] = &[
    Country {
        code: "CN",
        region: Region::Asia,
        cities: &[
            ("Shanghai", "CNSHA"),
            ("Shenzhen", "CNSZX"),
            ("Ningbo", "CNNGB"),
        ],
        port: "",
        legal: "Co., Ltd.",
        weight: 7,
    },
    Country {
        code: "VN",
        region: Region::Asia,
        cities: &[("Saigon", "VNSGN")],
        port: "VNSGN",
        legal: "JSC",
        weight: 2,
    },
    Country {
        code: "KR",
        region: Region::Asia,
        cities: &[("Busan", "KRPUS")],
        port: "KRPUS",
        legal: "Co., Ltd.",
        weight: 2,
    },
    Country {
        code: "TW",
        region: Region::Asia,
        cities: &[("Kaohsiung", "TWKHH")],
        port: "TWKHH",
        legal: "Corp.",
        weight: 2,
    },
    Country {
        code: "IN",
        region: Region::Asia,
        cities: &[("Pune", "INPNQ")],
        port: "INNSA",
        legal: "Pvt. Ltd.",
        weight: 2,
    },
    Country {
        code: "JP",
        region: Region::Asia,
        cities: &[("Yokohama", "JPYOK")],
        port: "JPYOK",
        legal: "K.K.",
        weight: 1,
    },
    Country {
        code: "MX",
        region: Region::Americas,
        cities: &[("Monterrey", "MXMTY")],
        port: "MXZLO",
        legal: "S.A. de C.V.",
        weight: 2,
    },
    Country {
        code: "DE",
        region: Region::Europe,
        cities: &[("Stuttgart", "DESTR")],
        port: "DEHAM",
        legal: "GmbH",
        weight: 2,
    },
    Country {
        code: "PL",
        region: Region::Europe,
        cities: &[("Wroclaw", "PLWRO")],
        port: "PLGDN",
        legal: "Sp. z o.o.",
        weight: 1,
    },
];

/// (id stem, country, region, plant LOCODE, port LOCODE) of the sites, in creation order.
const SITES: &[(&str, &str, Region, &str, &str)] = &[
    ("PLANT-DE", "DE", Region::Europe, "DEMUC", "DEHAM"),
    ("PLANT-US", "US", Region::Americas, "USONT", "USLAX"),
    ("PLANT-MX", "MX", Region::Americas, "MXGDL", "MXZLO"),
    ("PLANT-CZ", "CZ", Region::Europe, "CZPRG", "DEHAM"),
    ("PLANT-US", "US", Region::Americas, "USATL", "USSAV"),
    ("PLANT-PL", "PL", Region::Europe, "PLWRO", "PLGDN"),
    ("PLANT-IN", "IN", Region::Asia, "INPNQ", "INNSA"),
];

const TRADES: &[&str] = &[
    "Precision",
    "Castings",
    "Electronics",
    "Polymers",
    "Fasteners",
    "Optics",
    "Drives",
    "Harness",
    "Metalworks",
    "Components",
];

/// (description, min price, max price, min demand/day, max demand/day)
const PART_KINDS: &[(&str, f64, f64, f64, f64)] = &[
    ("bracket", 0.8, 6.0, 150.0, 600.0),
    ("wire harness", 12.0, 60.0, 40.0, 160.0),
    ("PCB assembly", 25.0, 180.0, 20.0, 120.0),
    ("bearing", 2.0, 15.0, 80.0, 400.0),
    ("housing", 5.0, 40.0, 40.0, 200.0),
    ("sensor", 8.0, 70.0, 30.0, 150.0),
    ("gasket", 0.3, 3.0, 200.0, 800.0),
    ("electric motor", 40.0, 250.0, 10.0, 60.0),
    ("connector", 0.5, 5.0, 150.0, 700.0),
    ("valve", 6.0, 45.0, 30.0, 180.0),
];

const OCEAN_CARRIERS: &[&str] = &["MAERSK", "MSC", "CMA-CGM", "COSCO", "HAPAG-LLOYD", "ONE"];
const AIR_CARRIERS: &[&str] = &["DHL", "LUFTHANSA-CARGO", "FEDEX"];
const ROAD_CARRIERS: &[&str] = &["DSV", "KUEHNE-NAGEL", "JB-HUNT"];
const RAIL_CARRIERS: &[&str] = &["DB-CARGO", "FERROMEX"];

/// Nominal dwell at the origin port before departure, in days.
pub(super) const ORIGIN_DWELL_DAYS: f64 = 1.0;
/// Nominal dwell at a transshipment hub, in days.
pub(super) const HUB_DWELL_DAYS: f64 = 2.0;
/// Nominal dwell at the destination port (unloading, customs), in days.
pub(super) const PORT_DWELL_DAYS: f64 = 1.5;
/// Nominal trucking time from the destination port to the plant, in days.
pub(super) const INLAND_DAYS: f64 = 0.5;

/// Builds the network and its index tables from the configuration.
pub(super) fn build(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> (Network, Topology) {
    let mut net = Network {
        sites: make_sites(cfg.sites),
        ..Network::default()
    };
    let countries: Vec<&Country> = (0..cfg.tier1_suppliers)
        .map(|_| pick_country(rng))
        .collect();
    for (i, country) in countries.iter().enumerate() {
        net.suppliers.push(make_supplier(rng, 1, i + 1, country));
    }
    for i in 0..cfg.tier2_suppliers {
        let country = pick_country(rng);
        net.suppliers.push(make_supplier(rng, 2, i + 1, country));
    }
    let mut topo = Topology::default();
    for (s, country) in countries.iter().enumerate() {
        for _ in 0..cfg.parts_per_supplier {
            add_part(&mut net, &mut topo, rng, s);
        }
        add_lanes(&mut net, &mut topo, rng, s, country);
    }
    add_alternates(&mut net, rng, cfg.tier1_suppliers);
    add_tier_links(&mut net, rng, cfg);
    (net, topo)
}

fn make_sites(n: usize) -> Vec<Site> {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    (0..n)
        .map(|i| {
            let (stem, country, _, locode, port) = SITES[i % SITES.len()];
            let count = counts.entry(stem).or_default();
            *count += 1;
            Site {
                id: format!("{stem}{count}"),
                country: country.to_string(),
                locode: locode.to_string(),
                port: port.to_string(),
            }
        })
        .collect()
}

fn site_region(site: usize) -> Region {
    SITES[site % SITES.len()].2
}

fn pick_country(rng: &mut ChaCha8Rng) -> &'static Country {
    let total: u32 = COUNTRIES.iter().map(|c| c.weight).sum();
    let mut roll = rng.random_range(0..total);
    for c in COUNTRIES {
        if roll < c.weight {
            return c;
        }
        roll -= c.weight;
    }
    &COUNTRIES[0]
}

fn make_supplier(rng: &mut ChaCha8Rng, tier: u8, n: usize, c: &Country) -> Supplier {
    let (city, locode) = *c.cities.choose(rng).unwrap_or(&c.cities[0]);
    let trade = TRADES.choose(rng).copied().unwrap_or("Components");
    let port = if c.port.is_empty() { locode } else { c.port };
    Supplier {
        id: format!("SUP-T{tier}-{n:03}"),
        name: format!("{city} {trade} {}", c.legal),
        tier,
        country: c.code.to_string(),
        locode: locode.to_string(),
        port: port.to_string(),
        lead_time_days: rng.random_range(14..=45),
    }
}

fn add_part(net: &mut Network, topo: &mut Topology, rng: &mut ChaCha8Rng, supplier: usize) {
    let &(desc, lo, hi, dlo, dhi) = PART_KINDS.choose(rng).unwrap_or(&PART_KINDS[0]);
    let part = net.parts.len();
    let n_sites = net.sites.len();
    // Most parts feed one or two sites; a few feed every site.
    let wanted = match rng.random_range(0..10) {
        0..=4 => 1,
        5..=8 => 2,
        _ => n_sites,
    }
    .min(n_sites);
    let first = if n_sites == 0 {
        0
    } else {
        rng.random_range(0..n_sites)
    };
    let mut uses = Vec::new();
    for k in 0..wanted {
        let site = (first + k) % n_sites;
        let demand = round1(rng.random_range(dlo..dhi));
        uses.push(PartUse {
            site: net.sites[site].id.clone(),
            daily_demand: demand,
        });
        topo.part_sites.push(PartSite {
            part,
            site,
            supplier,
            lane: usize::MAX,
            demand,
        });
    }
    net.parts.push(Part {
        id: format!("P-{}", 1001 + part),
        description: desc.to_string(),
        supplier: net.suppliers[supplier].id.clone(),
        unit_price: round2(rng.random_range(lo..hi)),
        uses,
        alternates: Vec::new(),
    });
}

/// Adds one lane per site the supplier's parts go to, and the matching supplier-site.
fn add_lanes(
    net: &mut Network,
    topo: &mut Topology,
    rng: &mut ChaCha8Rng,
    supplier: usize,
    country: &Country,
) {
    for site in 0..net.sites.len() {
        let part_sites: Vec<usize> = (0..topo.part_sites.len())
            .filter(|&i| topo.part_sites[i].supplier == supplier && topo.part_sites[i].site == site)
            .collect();
        if part_sites.is_empty() {
            continue;
        }
        let lane = net.lanes.len();
        net.lanes.push(make_lane(
            rng,
            &net.suppliers[supplier],
            country,
            &net.sites[site],
            site,
        ));
        for &ps in &part_sites {
            topo.part_sites[ps].lane = lane;
        }
        let review_days = rng.random_range(3..=7);
        topo.supplier_sites.push(SupplierSite {
            supplier,
            site,
            lane,
            part_sites,
            review_days,
            review_offset: rng.random_range(0..review_days),
        });
    }
    // The quoted lead time must cover production and the slowest lane.
    let slowest = net
        .lanes
        .iter()
        .filter(|l| l.supplier == net.suppliers[supplier].id)
        .map(|l| l.transit_days)
        .fold(0.0, f64::max);
    let production = rng.random_range(5.0..10.0);
    let lead = (slowest + production + 3.0).ceil().clamp(14.0, 60.0);
    net.suppliers[supplier].lead_time_days = lead as u32;
}

fn make_lane(
    rng: &mut ChaCha8Rng,
    sup: &Supplier,
    country: &Country,
    site: &Site,
    site_idx: usize,
) -> Lane {
    let (from, to) = (country.region, site_region(site_idx));
    let overland = from == to && from != Region::Asia;
    let mode = if overland {
        if rng.random_bool(0.7) {
            Mode::Road
        } else {
            Mode::Rail
        }
    } else if rng.random_bool(0.12) {
        Mode::Air
    } else {
        Mode::Ocean
    };
    let carriers = match mode {
        Mode::Ocean => OCEAN_CARRIERS,
        Mode::Air => AIR_CARRIERS,
        Mode::Road => ROAD_CARRIERS,
        Mode::Rail => RAIL_CARRIERS,
    };
    let carrier = carriers
        .choose(rng)
        .copied()
        .unwrap_or("MAERSK")
        .to_string();
    let (origin, destination) = if overland {
        (sup.locode.clone(), site.locode.clone())
    } else {
        (sup.port.clone(), site.port.clone())
    };
    let via = match mode {
        Mode::Ocean => hub_for(from, to, &origin).filter(|_| rng.random_bool(0.7)),
        _ => None,
    };
    let travel_days = match mode {
        Mode::Ocean => sail_days(from, to) * rng.random_range(0.9..1.1),
        Mode::Air => rng.random_range(1.0..2.0),
        Mode::Road => rng.random_range(2.0..5.0),
        Mode::Rail => rng.random_range(3.0..7.0),
    };
    let travel_days = round1(travel_days);
    let transit_days = round1(nominal_transit(mode, via.is_some(), travel_days));
    Lane {
        supplier: sup.id.clone(),
        site: site.id.clone(),
        mode,
        origin,
        via: via.map(str::to_string),
        destination,
        carrier,
        travel_days,
        transit_days,
    }
}

/// Nominal shipping-to-delivery time of a lane, dwell times included.
pub(super) fn nominal_transit(mode: Mode, via_hub: bool, travel_days: f64) -> f64 {
    match mode {
        Mode::Road | Mode::Rail => travel_days + 0.2,
        Mode::Air => 0.5 + travel_days + PORT_DWELL_DAYS + INLAND_DAYS,
        Mode::Ocean => {
            let hub = if via_hub { HUB_DWELL_DAYS } else { 0.0 };
            ORIGIN_DWELL_DAYS + travel_days + hub + PORT_DWELL_DAYS + INLAND_DAYS
        }
    }
}

fn sail_days(from: Region, to: Region) -> f64 {
    match (from, to) {
        (Region::Asia, Region::Europe) | (Region::Europe, Region::Asia) => 30.0,
        (Region::Asia, Region::Americas) | (Region::Americas, Region::Asia) => 18.0,
        (Region::Europe, Region::Americas) | (Region::Americas, Region::Europe) => 16.0,
        (Region::Asia, Region::Asia) => 8.0,
        _ => 6.0,
    }
}

fn hub_for(from: Region, to: Region, origin: &str) -> Option<&'static str> {
    let hub = match (from, to) {
        (Region::Asia, Region::Americas) | (Region::Americas, Region::Asia) => "KRPUS",
        (Region::Europe, Region::Americas) | (Region::Americas, Region::Europe) => "NLRTM",
        _ => "SGSIN",
    };
    (hub != origin).then_some(hub)
}

fn add_alternates(net: &mut Network, rng: &mut ChaCha8Rng, tier1: usize) {
    for part in &mut net.parts {
        if tier1 < 2 || rng.random_bool(0.45) {
            continue; // single source
        }
        let total: f64 = part.uses.iter().map(|u| u.daily_demand).sum();
        let wanted = rng.random_range(1..=2usize).min(tier1 - 1);
        while part.alternates.len() < wanted {
            let candidate = &net.suppliers[rng.random_range(0..tier1)].id;
            if *candidate == part.supplier
                || part.alternates.iter().any(|a| a.supplier == *candidate)
            {
                continue;
            }
            part.alternates.push(Alternate {
                supplier: candidate.clone(),
                capacity_per_day: round1(total * rng.random_range(0.3..1.5)),
                lead_time_days: rng.random_range(14..=60),
            });
        }
    }
}

fn add_tier_links(net: &mut Network, rng: &mut ChaCha8Rng, cfg: &SimConfig) {
    if cfg.tier1_suppliers == 0 {
        return;
    }
    for t2 in 0..cfg.tier2_suppliers {
        let tier2 = net.suppliers[cfg.tier1_suppliers + t2].id.clone();
        let customers = rng.random_range(1..=3usize).min(cfg.tier1_suppliers);
        let first = rng.random_range(0..cfg.tier1_suppliers);
        for k in 0..customers {
            let t1 = &net.suppliers[(first + k * 7) % cfg.tier1_suppliers];
            let parts: Vec<String> = net
                .parts
                .iter()
                .filter(|p| p.supplier == t1.id && rng.random_bool(0.6))
                .map(|p| p.id.clone())
                .collect();
            if parts.is_empty()
                || net
                    .tier_links
                    .iter()
                    .any(|l| l.tier2 == tier2 && l.tier1 == t1.id)
            {
                continue;
            }
            net.tier_links.push(TierLink {
                tier2: tier2.clone(),
                tier1: t1.id.clone(),
                parts,
                share: round2(rng.random_range(0.2..=1.0)),
            });
        }
    }
}

/// Rounds to one decimal.
pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounds to two decimals.
pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn network() -> (Network, Topology) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        build(&SimConfig::default(), &mut rng)
    }

    #[test]
    fn sizes_and_ids_follow_the_config() {
        let (net, topo) = network();
        assert_eq!(net.suppliers.len(), 36);
        assert_eq!(net.suppliers[0].id, "SUP-T1-001");
        assert_eq!(net.suppliers[24].id, "SUP-T2-001");
        assert_eq!(net.parts.len(), 72);
        assert_eq!(net.parts[0].id, "P-1001");
        let sites: Vec<&str> = net.sites.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(sites, ["PLANT-DE1", "PLANT-US1", "PLANT-MX1"]);
        assert!(topo.part_sites.iter().all(|ps| ps.lane < net.lanes.len()));
    }

    #[test]
    fn every_part_has_a_lane_and_lead_times_are_in_range() {
        let (net, topo) = network();
        for ss in &topo.supplier_sites {
            let lane = &net.lanes[ss.lane];
            assert_eq!(lane.supplier, net.suppliers[ss.supplier].id);
            assert_eq!(lane.site, net.sites[ss.site].id);
        }
        for s in net.suppliers.iter().filter(|s| s.tier == 1) {
            assert!((14..=60).contains(&s.lead_time_days), "{s:?}");
        }
    }

    #[test]
    fn some_parts_are_single_source_and_some_have_alternates() {
        let (net, _) = network();
        let single = net.parts.iter().filter(|p| p.alternates.is_empty()).count();
        assert!(single > 0 && single < net.parts.len());
        for p in &net.parts {
            assert!(p.alternates.iter().all(|a| a.supplier != p.supplier));
        }
    }

    #[test]
    fn tier2_links_point_to_tier1_parts() {
        let (net, _) = network();
        assert!(!net.tier_links.is_empty());
        for link in &net.tier_links {
            assert!(link.tier2.starts_with("SUP-T2-") && link.tier1.starts_with("SUP-T1-"));
            assert!(link.share > 0.0 && link.share <= 1.0);
            for part in &link.parts {
                let p = net.parts.iter().find(|p| &p.id == part);
                assert_eq!(p.map(|p| p.supplier.as_str()), Some(link.tier1.as_str()));
            }
        }
    }

    #[test]
    fn sites_beyond_the_named_list_get_numbered() {
        let sites = make_sites(9);
        assert_eq!(sites[4].id, "PLANT-US2");
        assert_eq!(sites[7].id, "PLANT-DE2");
    }
}
