//! Time to survive (TTS), time to recover (TTR) and the risk exposure index (REI) of every
//! supplier node (Simchi-Levi et al., Interfaces 2015), with small linear programs.
//!
//! In: a [`Network`], per part a [`PartSupply`] (daily demand, stock on hand + in transit,
//! unit price) and [`ExposureOptions`]. Out: one [`NodeExposure`] per supplier, ranked by
//! [`ranking`]; [`RankingTable`] prints them for `chainwatch network exposure`.
//!
//! When node N goes down, part P loses the fraction f(N, P) of its supply: 1 when N is P's
//! primary supplier, the cumulative path share when N is a sub-tier supplier
//! (`Network::dependencies`). The shortfall f·demand must come from stock or from P's
//! qualified alternates (not N, not listed as down), each delivering only after its lead time,
//! at most `capacity_per_day` units of P a day, its days shared between all the parts it could
//! make: sum over P of y(a,P) / capacity(a,P) <= t - lead(a). With one capacity for all parts
//! this is the textbook sum y(a,P) <= capacity(a) (t - lead(a)). When an alternate has
//! different lead times for different parts the shared budget starts at its earliest one (a
//! slight relaxation); the per-part limit y(a,P) <= capacity(a,P) (t - lead(a,P)) uses each
//! part's own.
//!
//! - TTS(N): the largest t <= horizon for which stock + alternates cover f·demand·t for every
//!   affected part. max(0, t - lead) is not linear: see `time_to_survive` for the exact
//!   decomposition into one LP per set of usable alternates.
//! - Lost value over TTR(N): LP minimising sum price(P)·lost(P) with stock(P) + sum_a y(a,P) +
//!   lost(P) >= f·demand(P)·TTR; here max(0, TTR - lead) is a constant, so one LP is exact.
//! - REI(N) = lost value(N) / the largest lost value of any node (0 when all are 0).
//!
//! A node with no affected part gets TTS = horizon and no lost value. A node without a declared
//! recovery time has no TTR: no lost value, never "exposed".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use good_lp::{
    microlp, variable, Expression, ProblemVariables, ResolutionError, Solution, SolverModel,
    Variable,
};
use serde::Serialize;

use super::model::{round6, Network};

/// Default horizon of TTS, in days.
pub const DEFAULT_HORIZON_DAYS: f64 = 365.0;

/// The supply position of one part: what the LPs need besides the network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartSupply {
    /// Part id.
    pub part: String,
    /// Units consumed per day (all sites).
    pub daily_demand: f64,
    /// Units on hand plus in transit: what can still be consumed when the supply stops.
    pub stock: f64,
    /// Value of a unit not delivered (lost value = sum of price x lost units).
    pub unit_price: f64,
}

/// Parameters of the exposure maths.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureOptions {
    /// TTS is capped here (days): "survives the horizon".
    pub horizon_days: f64,
    /// Suppliers known to be down now (e.g. from firing alerts): not usable as alternates.
    pub down: BTreeSet<String>,
}

impl Default for ExposureOptions {
    fn default() -> Self {
        ExposureOptions {
            horizon_days: DEFAULT_HORIZON_DAYS,
            down: BTreeSet::new(),
        }
    }
}

/// A part that loses supply when a node goes down.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AffectedPart {
    /// Part id.
    pub part: String,
    /// f(N, P): the fraction of the part's supply lost, in (0, 1].
    pub fraction: f64,
    /// Units not delivered over TTR in the cheapest plan (0 without TTR).
    pub lost_units: f64,
}

/// The exposure of one supplier node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeExposure {
    /// Supplier id.
    pub supplier: String,
    /// Display name.
    pub name: Option<String>,
    /// Tier.
    pub tier: u8,
    /// Time to survive in days, capped at the horizon.
    pub tts_days: f64,
    /// Declared time to recover in days.
    pub ttr_days: Option<f64>,
    /// TTS < TTR: demand cannot be met until the node is back.
    pub exposed: bool,
    /// Value of the demand not met over TTR, with the best use of stock and alternates.
    pub lost_value: f64,
    /// lost_value / the largest lost_value of all nodes, in [0, 1].
    pub rei: f64,
    /// Parts that lose supply, in id order.
    pub affected_parts: Vec<AffectedPart>,
    /// Affected parts with no [`PartSupply`]: left out of the maths (TTS may be too high).
    pub parts_without_supply: Vec<String>,
}

/// One part in the LPs of one node.
#[derive(Debug, Clone)]
struct Need {
    part: String,
    /// f(N, P) x daily demand: units a day to replace.
    rate: f64,
    stock: f64,
    price: f64,
}

/// One usable (alternate, part) pair.
#[derive(Debug, Clone)]
struct Pair {
    /// Alternate supplier.
    alt: String,
    /// Index into the needs.
    need: usize,
    capacity: f64,
    lead: f64,
}

/// Every supplier's exposure, sorted by REI (highest first), then TTS (shortest first), then id.
pub fn ranking(
    network: &Network,
    supply: &[PartSupply],
    options: &ExposureOptions,
) -> Vec<NodeExposure> {
    let horizon = if options.horizon_days.is_finite() && options.horizon_days > 0.0 {
        options.horizon_days
    } else {
        DEFAULT_HORIZON_DAYS
    };
    let supply: BTreeMap<&str, &PartSupply> = supply.iter().map(|s| (s.part.as_str(), s)).collect();
    let deps = network.dependencies();
    let mut out: Vec<NodeExposure> = network
        .suppliers
        .values()
        .map(|s| {
            let empty = BTreeMap::new();
            let fractions = deps.get(&s.id).unwrap_or(&empty);
            let mut needs = Vec::new();
            let mut without = Vec::new();
            for (part, &f) in fractions {
                match supply.get(part.as_str()) {
                    Some(ps) => needs.push(Need {
                        part: part.clone(),
                        rate: clean(f * ps.daily_demand),
                        stock: clean(ps.stock),
                        price: clean(ps.unit_price),
                    }),
                    None => without.push(part.clone()),
                }
            }
            let pairs = usable_pairs(network, &s.id, &needs, options, horizon);
            let tts = time_to_survive(&needs, &pairs, horizon);
            let ttr = s.recovery_days();
            let lost_units = match ttr {
                Some(ttr) => lost_over(&needs, &pairs, ttr),
                None => vec![0.0; needs.len()],
            };
            let lost_value = round6(
                needs
                    .iter()
                    .zip(&lost_units)
                    .map(|(n, l)| n.price * l)
                    .sum::<f64>(),
            );
            let affected_parts = fractions
                .iter()
                .map(|(part, &f)| AffectedPart {
                    part: part.clone(),
                    fraction: f,
                    lost_units: needs
                        .iter()
                        .position(|n| &n.part == part)
                        .map_or(0.0, |i| round6(lost_units[i])),
                })
                .collect();
            NodeExposure {
                supplier: s.id.clone(),
                name: s.name.clone(),
                tier: s.tier,
                tts_days: round6(tts),
                ttr_days: ttr,
                exposed: ttr.is_some_and(|r| round6(tts) < r),
                lost_value,
                rei: 0.0,
                affected_parts,
                parts_without_supply: without,
            }
        })
        .collect();
    let worst = out.iter().map(|n| n.lost_value).fold(0.0, f64::max);
    if worst > 0.0 {
        for n in &mut out {
            n.rei = round6(n.lost_value / worst);
        }
    }
    out.sort_by(|a, b| {
        b.rei
            .total_cmp(&a.rei)
            .then(a.tts_days.total_cmp(&b.tts_days))
            .then_with(|| a.supplier.cmp(&b.supplier))
    });
    out
}

/// Non-negative finite, else 0 (bad supply data must not break the LPs).
fn clean(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

/// The (alternate, part) pairs that can help when `node` is down: qualified, with capacity,
/// not `node`, not listed as down, delivering before the horizon, for a part that needs it.
fn usable_pairs(
    network: &Network,
    node: &str,
    needs: &[Need],
    options: &ExposureOptions,
    horizon: f64,
) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for (i, need) in needs.iter().enumerate() {
        if need.rate <= 0.0 {
            continue;
        }
        let Some(part) = network.part(&need.part) else {
            continue;
        };
        for a in part.alternates.iter().filter(|a| a.is_usable()) {
            let lead = a.lead_time_days();
            if a.supplier == node || options.down.contains(&a.supplier) || lead >= horizon {
                continue;
            }
            pairs.push(Pair {
                alt: a.supplier.clone(),
                need: i,
                capacity: a.capacity_per_day,
                lead,
            });
        }
    }
    pairs
}

/// TTS: the largest t in [0, horizon] such that, for every part,
/// stock + sum_a y(a,P) >= rate·t, y(a,P) <= capacity(a,P)·max(0, t - lead(a,P)) and the
/// shared budget sum_P y(a,P)/capacity(a,P) <= max(0, t - lead(a)) of every alternate a.
///
/// Exactness of the decomposition. Let L1 < ... < Lk be the distinct lead times of the usable
/// pairs and LP_j the linear program "max t s.t. t in [Lj, horizon], only pairs with lead <= Lj,
/// max(0, t - lead) written as t - lead", LP_0 the program without alternates.
/// (1) Every LP_j is a restriction of the true problem: a feasible (t, y) of LP_j has
/// t >= Lj >= lead for every pair it uses, so t - lead = max(0, t - lead) there, and the pairs it
/// does not use deliver y = 0, which the true problem allows. So max_j LP_j <= TTS.
/// (2) Let (t*, y*) be optimal for the true problem and j the largest index with Lj <= t*
/// (j = 0 if none). Pairs with lead > t* have capacity max(0, t* - lead) = 0, so y* = 0 on
/// them; on the others max(0, t* - lead) = t* - lead, and t* >= Lj: (t*, y*) is feasible for
/// LP_j. So TTS <= max_j LP_j. Hence TTS = max_j LP_j. LP_0 has the closed form
/// min_P stock/rate (capped at the horizon).
fn time_to_survive(needs: &[Need], pairs: &[Pair], horizon: f64) -> f64 {
    let active: Vec<&Need> = needs.iter().filter(|n| n.rate > 0.0).collect();
    let mut best = active
        .iter()
        .map(|n| n.stock / n.rate)
        .fold(horizon, f64::min);
    let mut leads: Vec<f64> = pairs.iter().map(|p| p.lead).collect();
    leads.sort_by(f64::total_cmp);
    leads.dedup();
    for lead in leads {
        // LP_j cannot beat the best so far when even the horizon is not above it.
        if best >= horizon {
            break;
        }
        let usable: Vec<&Pair> = pairs.iter().filter(|p| p.lead <= lead).collect();
        if let Some(t) = solve_tts(needs, &usable, lead, horizon) {
            best = best.max(t.min(horizon));
        }
    }
    best
}

/// LP_j of [`time_to_survive`]; `None` when infeasible (or the solver fails, logged).
fn solve_tts(needs: &[Need], pairs: &[&Pair], lead: f64, horizon: f64) -> Option<f64> {
    let mut vars = ProblemVariables::new();
    let t = vars.add(variable().min(lead).max(horizon));
    let y: Vec<Variable> = pairs
        .iter()
        .map(|_| vars.add(variable().min(0.0)))
        .collect();
    let mut model = vars.maximise(t).using(microlp);
    for (i, need) in needs.iter().enumerate() {
        if need.rate <= 0.0 {
            continue;
        }
        let mut supply = Expression::from(need.stock);
        for (p, &v) in pairs.iter().zip(&y) {
            if p.need == i {
                supply += v;
            }
        }
        model = model.with(supply.geq(need.rate * t));
    }
    for constraint in capacity_constraints(pairs, &y, CapacityAt::Variable(t)) {
        model = model.with(constraint);
    }
    match model.solve() {
        Ok(solution) => Some(solution.value(t)),
        Err(ResolutionError::Infeasible) => None,
        Err(e) => {
            tracing::warn!(error = %e, "Exposure LP failed; candidate skipped.");
            None
        }
    }
}

/// The time the capacity constraints are written at: TTS's variable or the fixed TTR.
#[derive(Clone, Copy)]
enum CapacityAt {
    Variable(Variable),
    Fixed(f64),
}

/// y(a,P) <= capacity(a,P)·(t - lead(a,P)) and, per alternate with several parts,
/// sum_P y(a,P)/capacity(a,P) <= t - min lead(a); every pair given has lead <= t.
fn capacity_constraints(
    pairs: &[&Pair],
    y: &[Variable],
    at: CapacityAt,
) -> Vec<good_lp::Constraint> {
    let time = |minus: f64| match at {
        CapacityAt::Variable(t) => Expression::from(t) - minus,
        CapacityAt::Fixed(t) => Expression::from(t - minus),
    };
    let mut out = Vec::new();
    let mut by_alt: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, p) in pairs.iter().enumerate() {
        out.push(Expression::from(y[k]).leq(time(p.lead) * p.capacity));
        by_alt.entry(p.alt.as_str()).or_default().push(k);
    }
    for ks in by_alt.values().filter(|ks| ks.len() > 1) {
        let earliest = ks
            .iter()
            .map(|&k| pairs[k].lead)
            .fold(f64::INFINITY, f64::min);
        let mut days = Expression::from(0.0);
        for &k in ks {
            days.add_mul(1.0 / pairs[k].capacity, y[k]);
        }
        out.push(days.leq(time(earliest)));
    }
    out
}

/// Units lost per need over `ttr` days in the plan of least lost value: one LP (pairs that
/// deliver before `ttr` only, so max(0, ttr - lead) = ttr - lead is a constant).
fn lost_over(needs: &[Need], pairs: &[Pair], ttr: f64) -> Vec<f64> {
    let shortfall: Vec<f64> = needs
        .iter()
        .map(|n| (n.rate * ttr - n.stock).max(0.0))
        .collect();
    let usable: Vec<&Pair> = pairs
        .iter()
        .filter(|p| p.lead < ttr && shortfall[p.need] > 0.0)
        .collect();
    if usable.is_empty() {
        return shortfall;
    }
    let mut vars = ProblemVariables::new();
    let lost: Vec<Variable> = needs
        .iter()
        .map(|_| vars.add(variable().min(0.0)))
        .collect();
    let y: Vec<Variable> = usable
        .iter()
        .map(|_| vars.add(variable().min(0.0)))
        .collect();
    let mut objective = Expression::from(0.0);
    for (n, &l) in needs.iter().zip(&lost) {
        // A tiny weight on every lost unit: among plans of equal value, lose the fewest units
        // (parts without a price would otherwise get an arbitrary share of the capacity).
        objective.add_mul(n.price + 1e-9, l);
    }
    let mut model = vars.minimise(objective).using(microlp);
    for (i, &need) in shortfall.iter().enumerate() {
        if need <= 0.0 {
            continue;
        }
        let mut covered = Expression::from(lost[i]);
        for (p, &v) in usable.iter().zip(&y) {
            if p.need == i {
                covered += v;
            }
        }
        model = model.with(covered.geq(need));
    }
    for constraint in capacity_constraints(&usable, &y, CapacityAt::Fixed(ttr)) {
        model = model.with(constraint);
    }
    match model.solve() {
        Ok(solution) => lost
            .iter()
            .zip(&shortfall)
            .map(|(&l, &s)| {
                if s > 0.0 {
                    solution.value(l).clamp(0.0, s)
                } else {
                    0.0
                }
            })
            .collect(),
        Err(e) => {
            // Always feasible (lost = shortfall); a solver failure falls back to no alternates.
            tracing::warn!(error = %e, "Lost-value LP failed; counted without alternates.");
            shortfall
        }
    }
}

/// The ranking as a text table (`chainwatch network exposure`).
pub struct RankingTable<'a>(pub &'a [NodeExposure]);

impl fmt::Display for RankingTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .0
            .iter()
            .map(|n| n.supplier.chars().count())
            .max()
            .unwrap_or(0)
            .max("supplier".len());
        writeln!(
            f,
            "{:>3}  {:<width$}  {:>4}  {:>8}  {:>8}  {:<7}  {:>14}  {:>5}  parts",
            "#", "supplier", "tier", "tts_days", "ttr_days", "exposed", "lost_value", "rei"
        )?;
        for (i, n) in self.0.iter().enumerate() {
            let ttr = n.ttr_days.map_or("-".to_string(), |d| format!("{d:.1}"));
            let parts: Vec<&str> = n.affected_parts.iter().map(|p| p.part.as_str()).collect();
            let shown = if parts.len() > 6 {
                format!("{} +{}", parts[..6].join(","), parts.len() - 6)
            } else if parts.is_empty() {
                "-".to_string()
            } else {
                parts.join(",")
            };
            writeln!(
                f,
                "{:>3}  {:<width$}  {:>4}  {:>8.1}  {:>8}  {:<7}  {:>14.2}  {:>5.3}  {}",
                i + 1,
                n.supplier,
                n.tier,
                n.tts_days,
                ttr,
                if n.exposed { "yes" } else { "no" },
                n.lost_value,
                n.rei,
                shown
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
