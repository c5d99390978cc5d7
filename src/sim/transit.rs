//! One shipment's journey along its lane: ship-out, milestones, ETA updates, delivery.
//!
//! In: the lane, the earliest time the goods are ready, the delivery time the supplier aims for,
//! and the scenario (hub congestion). Out: a [`Trip`] with the shipping time, the first ETA,
//! the milestones in time order (the last one is `delivered`) and the ETA updates the carrier
//! sends when a delay becomes known. The supplier plans with the lane's nominal transit time;
//! the realized legs vary around it, and the congested hub multiplies its dwell.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::clock::{days, rand_days, rand_hours, Clock};
use super::network::{Lane, Mode, Site};
use super::record::Status;
use super::scenario::{Scenario, CONGESTION_FACTOR};

/// Reason code of ETA updates and holds caused by hub congestion.
pub(super) const CONGESTION_REASON: &str = "port_congestion";
/// An ETA update is sent when the delivery slips more than this past the current ETA.
const ETA_SLACK_HOURS: i64 = 12;

/// One milestone of a trip.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Stop {
    pub time: DateTime<Utc>,
    pub status: Status,
    pub location: String,
    pub reason: Option<&'static str>,
}

/// A new ETA, announced at `time`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EtaChange {
    pub time: DateTime<Utc>,
    pub eta: DateTime<Utc>,
    pub reason: &'static str,
}

/// The planned journey of one shipment.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Trip {
    /// When the shipment is handed to the carrier (`shipment_created`).
    pub ship: DateTime<Utc>,
    /// The ETA in `shipment_created`: ship time plus nominal transit.
    pub eta: DateTime<Utc>,
    /// Milestones in time order; the last is `delivered` at the site.
    pub stops: Vec<Stop>,
    /// ETA updates in the order they are sent.
    pub eta_changes: Vec<EtaChange>,
}

impl Trip {
    /// When the goods arrive at the site.
    pub fn delivered(&self) -> DateTime<Utc> {
        self.stops.last().map_or(self.eta, |s| s.time)
    }

    /// Moves the whole trip later by `by` (the supplier ships later).
    pub fn shift(&mut self, by: Duration) {
        self.ship += by;
        self.eta += by;
        for s in &mut self.stops {
            s.time += by;
        }
        for c in &mut self.eta_changes {
            c.time += by;
            c.eta += by;
        }
    }

    /// Holds the shipment at its destination until `release` (customs, a stock-out scenario);
    /// the carrier announces the new ETA at `announce`.
    pub fn hold_at_destination(
        &mut self,
        rng: &mut ChaCha8Rng,
        announce: DateTime<Utc>,
        release: DateTime<Utc>,
        reason: &'static str,
    ) {
        let n = self.stops.len();
        if n < 2 || release <= self.delivered() {
            return;
        }
        let arrived = &self.stops[n - 2];
        let held_at = (arrived.time + rand_hours(rng, 2, 6)).max(announce);
        let held = Stop {
            time: held_at.min(release - Duration::hours(1)),
            status: Status::Held,
            location: arrived.location.clone(),
            reason: Some(reason),
        };
        self.stops.insert(n - 1, held);
        self.stops[n].time = release;
        let announce = announce.max(self.ship + Duration::hours(2));
        for c in self.eta_changes.iter_mut().filter(|c| c.time >= announce) {
            c.eta = release;
        }
        self.eta_changes.push(EtaChange {
            time: announce,
            eta: release,
            reason,
        });
        self.eta_changes.sort_by_key(|c| c.time);
    }
}

/// Plans a shipment on `lane` to `site`: ready at `ready`, aiming to deliver at `target`.
pub(super) fn plan_trip(
    clock: &Clock,
    scenario: &Scenario,
    rng: &mut ChaCha8Rng,
    lane: &Lane,
    site: &Site,
    ready: DateTime<Utc>,
    target: DateTime<Utc>,
) -> Trip {
    let ship = clock.working((target - days(lane.transit_days)).max(ready), rng);
    let mut trip = Trip {
        ship,
        eta: ship + days(lane.transit_days),
        stops: Vec::new(),
        eta_changes: Vec::new(),
    };
    let mut at_destination = match lane.mode {
        Mode::Road | Mode::Rail => overland(rng, lane, &mut trip),
        Mode::Air => air(rng, lane, &mut trip),
        Mode::Ocean => ocean(scenario, rng, lane, &mut trip),
    };
    if lane.mode != Mode::Road && lane.mode != Mode::Rail {
        at_destination += rand_days(rng, 0.7, 2.3) + rand_days(rng, 0.3, 0.8);
    }
    let delivered = clock.working(at_destination, rng);
    trip.stops.push(Stop {
        time: delivered,
        status: Status::Delivered,
        location: site.locode.clone(),
        reason: None,
    });
    announce_late_arrival(rng, &mut trip);
    trip
}

fn stop(trip: &mut Trip, time: DateTime<Utc>, status: Status, location: &str) {
    trip.stops.push(Stop {
        time,
        status,
        location: location.to_string(),
        reason: None,
    });
}

/// Truck or train straight to the plant; returns the arrival there.
fn overland(rng: &mut ChaCha8Rng, lane: &Lane, trip: &mut Trip) -> DateTime<Utc> {
    let departed = trip.ship + rand_hours(rng, 1, 4);
    let arrived = departed + days(lane.travel_days * rng.random_range(0.9..1.15));
    stop(trip, departed, Status::Departed, &lane.origin);
    stop(trip, arrived, Status::Arrived, &lane.destination);
    arrived + rand_hours(rng, 1, 3)
}

/// Flight to the destination airport; returns the arrival there.
fn air(rng: &mut ChaCha8Rng, lane: &Lane, trip: &mut Trip) -> DateTime<Utc> {
    let departed = trip.ship + rand_days(rng, 0.3, 0.7);
    let arrived = departed + days(lane.travel_days * rng.random_range(0.9..1.2));
    stop(trip, departed, Status::Departed, &lane.origin);
    stop(trip, arrived, Status::Arrived, &lane.destination);
    arrived
}

/// Vessel to the destination port, possibly via a hub; returns the arrival there.
fn ocean(scenario: &Scenario, rng: &mut ChaCha8Rng, lane: &Lane, trip: &mut Trip) -> DateTime<Utc> {
    let departed = trip.ship + rand_days(rng, 0.5, 1.5);
    stop(trip, departed, Status::Departed, &lane.origin);
    let Some(hub) = lane.via.as_deref() else {
        let arrived = departed + days(lane.travel_days * rng.random_range(0.96..1.05));
        stop(trip, arrived, Status::Arrived, &lane.destination);
        return arrived;
    };
    let at_hub = departed + days(lane.travel_days * 0.4 * rng.random_range(0.96..1.05));
    stop(trip, at_hub, Status::Arrived, hub);
    let mut dwell = rand_days(rng, 1.0, 3.0);
    if scenario.congested(hub, at_hub, at_hub + dwell) {
        let factor = CONGESTION_FACTOR * rng.random_range(0.8..1.25);
        dwell = days(dwell.num_seconds() as f64 / 86_400.0 * factor);
        // Nobody knows before the congestion starts.
        let known = scenario
            .congestion_start()
            .map_or(at_hub, |s| s.max(at_hub));
        congestion_notices(rng, trip, hub, known);
    }
    let left_hub = at_hub + dwell;
    stop(trip, left_hub, Status::Departed, hub);
    let arrived = left_hub + days(lane.travel_days * 0.6 * rng.random_range(0.96..1.05));
    stop(trip, arrived, Status::Arrived, &lane.destination);
    arrived
}

/// A `held` milestone for some congested shipments; the ETA update follows in
/// [`announce_late_arrival`], sent when the congestion is known.
fn congestion_notices(rng: &mut ChaCha8Rng, trip: &mut Trip, hub: &str, known: DateTime<Utc>) {
    if rng.random_bool(0.4) {
        trip.stops.push(Stop {
            time: known + rand_hours(rng, 2, 8),
            status: Status::Held,
            location: hub.to_string(),
            reason: Some(CONGESTION_REASON),
        });
    }
    // Placeholder: the new ETA is filled in once the delivery time is known.
    trip.eta_changes.push(EtaChange {
        time: known + rand_hours(rng, 8, 20),
        eta: known,
        reason: CONGESTION_REASON,
    });
}

/// Fills in the congestion ETA, or sends one when the delivery is late for other reasons.
fn announce_late_arrival(rng: &mut ChaCha8Rng, trip: &mut Trip) {
    let delivered = trip.delivered();
    if let Some(c) = trip.eta_changes.first_mut() {
        c.eta = delivered;
        return;
    }
    if delivered <= trip.eta + Duration::hours(ETA_SLACK_HOURS) {
        return;
    }
    // The carrier notices at the last arrival before delivery.
    let n = trip.stops.len();
    let last_arrival = trip.stops[n.saturating_sub(2)].time;
    let time = (last_arrival + rand_hours(rng, 1, 6)).min(delivered - Duration::hours(1));
    let reason = if rng.random_bool(0.5) {
        "late_vessel"
    } else {
        "weather"
    };
    trip.eta_changes.push(EtaChange {
        time: time.max(trip.ship + Duration::hours(1)),
        eta: delivered,
        reason,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;

    fn lane(mode: Mode, via: Option<&str>) -> Lane {
        Lane {
            supplier: "SUP-T1-001".into(),
            site: "PLANT-DE1".into(),
            mode,
            origin: "CNSHA".into(),
            via: via.map(str::to_string),
            destination: "DEHAM".into(),
            carrier: "MAERSK".into(),
            travel_days: 30.0,
            transit_days: 35.0,
        }
    }

    fn site() -> Site {
        Site {
            id: "PLANT-DE1".into(),
            country: "DE".into(),
            locode: "DEMUC".into(),
            port: "DEHAM".into(),
        }
    }

    fn t(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() + Duration::days(d)
    }

    #[test]
    fn ocean_via_hub_has_ordered_milestones_ending_in_delivery() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let clock = Clock::new(t(0));
        let trip = plan_trip(
            &clock,
            &Scenario::default(),
            &mut rng,
            &lane(Mode::Ocean, Some("SGSIN")),
            &site(),
            t(0),
            t(40),
        );
        let statuses: Vec<_> = trip.stops.iter().map(|s| s.status).collect();
        use Status::*;
        assert_eq!(statuses, [Departed, Arrived, Departed, Arrived, Delivered]);
        assert!(trip.stops.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(trip.ship >= t(0) && trip.ship < trip.stops[0].time);
        let off = (trip.delivered() - t(40)).num_hours().abs();
        assert!(off < 96, "delivered {} vs target", trip.delivered());
        assert_eq!(trip.stops[4].location, "DEMUC");
    }

    #[test]
    fn shift_and_hold_move_delivery_and_announce_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let clock = Clock::new(t(0));
        let mut trip = plan_trip(
            &clock,
            &Scenario::default(),
            &mut rng,
            &lane(Mode::Road, None),
            &site(),
            t(0),
            t(10),
        );
        let before = trip.delivered();
        trip.shift(Duration::days(2));
        assert_eq!(trip.delivered(), before + Duration::days(2));
        let release = trip.delivered() + Duration::days(5);
        trip.hold_at_destination(
            &mut rng,
            trip.ship + Duration::hours(3),
            release,
            "customs_hold",
        );
        assert_eq!(trip.delivered(), release);
        let held = &trip.stops[trip.stops.len() - 2];
        assert_eq!(held.status, Status::Held);
        assert!(held.time < release);
        assert_eq!(trip.eta_changes.last().map(|c| c.eta), Some(release));
    }
}
