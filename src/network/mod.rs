//! The supply network: suppliers by tier, sub-tier links, our parts and their alternates, and
//! the risk maths on top of it.
//!
//! In: `network/*.yaml` files (strict, every error as `file:line:col: message`), records of the
//! compacted network topic (`supplier:<id>`, `link:<from>><to>`, `part:<id>`, JSON values,
//! tombstones), or the simulator's network. Out: a validated [`Network`] and what is computed
//! from it:
//! - `model.rs`: [`Network`], its invariants ([`Network::check`]), merge and topic records;
//! - `parse.rs`: positioned YAML -> entries ([`load_dir`], [`load_str`]);
//! - `paths.rs`: multi-tier roll-up paths with cumulative shares ([`PathRow`]);
//! - `concentration.rs`: HHI, single source flag and risk class per part;
//! - `exposure.rs`: time to survive / recover and the risk exposure index per node (small LPs);
//! - `tables.rs`: the network as Arrow tables for the indicator SQL;
//! - `alternates.rs`: the qualified alternates of a part, ranked for an alert.
//!
//! The format and the maths, with a hand-computed example: `docs/network.md`.

mod alternates;
pub mod concentration;
pub mod exposure;
mod model;
mod parse;
pub mod paths;
pub mod tables;

pub use alternates::RankedAlternate;
pub use concentration::{hhi, PartConcentration, RiskClass};
pub use exposure::{ranking, ExposureOptions, NodeExposure, PartSupply, RankingTable};
pub use model::{
    Alternate, Link, LinkKey, Network, Part, Problem, RecordError, Supplier, MAX_TIER,
};
pub use parse::{load_dir, load_str, NetworkError};
pub use paths::PathRow;
