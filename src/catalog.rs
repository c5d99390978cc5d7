//! Master data in force: the supplier feed definitions and the supply network.
//!
//! In: `feeds/*.yaml` ([`crate::feeds`]), `network/*.yaml` ([`crate::network`]), the
//! `supplier:` blocks of the feeds, and the records of the compacted network topic. Out: a
//! [`Catalog`] (feeds, merged network, their SQL tables) published on a watch channel, and the
//! feed set alone on another (ingest re-subscribes only when feeds change).
//!
//! Layers, later wins per id: network files, then feed definitions, then topic records. A
//! changed directory is reloaded as a whole; a definition with errors is reported (log,
//! `chainwatch_feeds_reloads_total{result="failure"}`, `/api/status`) and the last good set
//! stays in force. A topic record that would break the network is refused and counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::config::{Config, KafkaConfig};
use crate::export::metrics::Metrics;
use crate::feeds::{self, FeedSet};
use crate::ingest::kafka;
use crate::network::{self, Link, Network, Supplier};
use crate::reload::Fingerprint;

/// The master data the pipeline works with at one moment.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Supplier feed definitions.
    pub feeds: Arc<FeedSet>,
    /// The merged supply network.
    pub network: Arc<Network>,
    /// `network_*` and `feeds` tables for indicator SQL.
    pub tables: Vec<(&'static str, RecordBatch)>,
    /// Problems of the last reload attempt (empty when it applied).
    pub errors: Vec<String>,
    /// Topic records refused so far (key: reason), latest per key.
    pub refused_records: BTreeMap<String, String>,
}

/// Why master data could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid feed definitions:\n{0}")]
    Feeds(String),
    #[error("invalid network files:\n{0}")]
    Network(String),
}

/// Name of the feed definitions table.
pub const FEEDS_TABLE: &str = "feeds";

fn feeds_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("feed", DataType::Utf8, false),
        Field::new("supplier", DataType::Utf8, false),
        Field::new("tier", DataType::Int64, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("expect_every_seconds", DataType::Float64, false),
    ]))
}

/// Empty catalog tables with their schemas: indicator SQL is planned against them.
pub fn empty_tables() -> Vec<(&'static str, RecordBatch)> {
    let mut t = network::tables::empty();
    t.push((FEEDS_TABLE, RecordBatch::new_empty(feeds_schema())));
    t
}

fn feeds_table(feeds: &FeedSet) -> RecordBatch {
    let f: Vec<_> = feeds.iter().collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            f.iter().map(|f| f.name.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            f.iter().map(|f| f.supplier.id.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            f.iter().map(|f| i64::from(f.supplier.tier)),
        )),
        Arc::new(StringArray::from_iter_values(
            f.iter().map(|f| f.topic.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            f.iter().map(|f| f.expect_every.as_secs_f64()),
        )),
    ];
    RecordBatch::try_new(feeds_schema(), cols).unwrap_or_else(|e| {
        tracing::error!(error = %e, "Feeds table does not match its schema.");
        RecordBatch::new_empty(feeds_schema())
    })
}

/// The network the feed definitions declare: each feed's supplier and its `supplies` links.
pub fn network_of_feeds(feeds: &FeedSet) -> Network {
    let mut net = Network::default();
    for f in feeds.iter() {
        let s = &f.supplier;
        net.upsert_supplier(Supplier {
            id: s.id.clone(),
            name: s.name.clone(),
            tier: s.tier,
            recovery_time: s.recovery_time,
            country: None,
        });
        for l in &s.supplies {
            net.upsert_link(Link {
                from: s.id.clone(),
                to: l.to.clone(),
                parts: l.parts.clone(),
                share: l.share.unwrap_or(1.0),
            });
        }
    }
    net
}

/// Loaded sources, before merging.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub feeds: Arc<FeedSet>,
    pub files: Network,
    /// Latest value per key of the network topic (tombstones remove the key).
    pub records: BTreeMap<String, Vec<u8>>,
    /// Roll-up depth of `network_paths` (`[network] max_depth`); 0 means the default 5.
    pub max_depth: u32,
}

impl Sources {
    /// Merge the layers into a catalog; `refused` gets the topic records that did not apply.
    pub fn build(&self) -> Catalog {
        let mut net = self.files.clone();
        let from_feeds = network_of_feeds(&self.feeds);
        let mut merged = net.clone();
        merged.merge(from_feeds);
        let mut errors = Vec::new();
        if merged.check().is_empty() {
            net = merged;
        } else {
            // Feed declarations that contradict the network files are reported, not applied.
            for p in merged.check() {
                errors.push(format!("feeds' supplier blocks: {p}"));
            }
        }
        let mut refused = BTreeMap::new();
        // Suppliers before the parts and links that name them.
        let rank = |k: &str| match k.split(':').next() {
            Some("supplier") => 0,
            Some("part") => 1,
            _ => 2,
        };
        let mut records: Vec<(&String, &Vec<u8>)> = self.records.iter().collect();
        records.sort_by_key(|(k, _)| rank(k));
        for (key, value) in records {
            if let Err(e) = net.apply_record(key, Some(value)) {
                refused.insert(key.clone(), e.to_string());
            }
        }
        let depth = match self.max_depth {
            0 => network::tables::PATH_MAX_DEPTH,
            d => d,
        };
        let mut tables = net.tables_to_depth(depth);
        tables.push((FEEDS_TABLE, feeds_table(&self.feeds)));
        Catalog {
            feeds: self.feeds.clone(),
            network: Arc::new(net),
            tables,
            errors,
            refused_records: refused,
        }
    }
}

/// Feed definitions of `dir`; a missing directory means none.
pub fn load_feeds(dir: &Path) -> Result<FeedSet, CatalogError> {
    if !dir.exists() {
        return Ok(FeedSet::default());
    }
    feeds::load_dir(dir).map_err(|errs| {
        CatalogError::Feeds(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

/// Network files of `dir`; a missing directory means an empty network.
pub fn load_network(dir: &Path) -> Result<Network, CatalogError> {
    if !dir.exists() {
        return Ok(Network::default());
    }
    network::load_dir(dir).map_err(|errs| {
        CatalogError::Network(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

/// Load feeds and network files at start (errors stop the start).
pub fn load_sources(config: &Config) -> Result<Sources, CatalogError> {
    Ok(Sources {
        feeds: Arc::new(load_feeds(&config.feeds.dir)?),
        files: load_network(&config.network.dir)?,
        records: BTreeMap::new(),
        max_depth: u32::try_from(config.network.max_depth).unwrap_or(5),
    })
}

/// Keeps the catalog current: polls the feed and network directories, reads the network topic.
pub struct CatalogTask {
    pub config: Config,
    pub brokers: String,
    pub sources: Sources,
    pub catalog: watch::Sender<Arc<Catalog>>,
    pub feeds: watch::Sender<Arc<FeedSet>>,
    pub metrics: Metrics,
    /// Create topics of new feeds (not on the embedded broker, which creates them itself).
    pub create_topics: bool,
}

impl CatalogTask {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let fingerprint = |d: &Path| {
            let d = d.to_path_buf();
            tokio::task::spawn_blocking(move || Fingerprint::of(&d))
        };
        let mut feeds_seen = fingerprint(&self.config.feeds.dir)
            .await
            .unwrap_or_default();
        let mut network_seen = fingerprint(&self.config.network.dir)
            .await
            .unwrap_or_default();
        let consumer = self.network_consumer().await;
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = poll.tick(), if self.config.feeds.watch => {
                    let f = fingerprint(&self.config.feeds.dir).await.unwrap_or_default();
                    let n = fingerprint(&self.config.network.dir).await.unwrap_or_default();
                    if f != feeds_seen {
                        feeds_seen = f;
                        self.reload_feeds().await;
                    }
                    if n != network_seen {
                        network_seen = n;
                        self.reload_network();
                    }
                }
                m = recv(consumer.as_deref()) => {
                    let Some(first) = m else { continue };
                    // Take what else is there (a whole topic at start) and rebuild once:
                    // a rebuild per record would be quadratic in the topic's size.
                    let mut keys = Vec::new();
                    let mut next = Some(first);
                    while let Some((key, value)) = next.take() {
                        match value {
                            Some(v) => {
                                self.sources.records.insert(key.clone(), v);
                            }
                            None => {
                                self.sources.records.remove(&key);
                            }
                        }
                        keys.push(key);
                        if keys.len() >= 100_000 {
                            break;
                        }
                        next = tokio::time::timeout(Duration::from_millis(50), recv(consumer.as_deref()))
                            .await
                            .ok()
                            .flatten();
                    }
                    self.publish_network(&keys);
                }
            }
        }
    }

    async fn reload_feeds(&mut self) {
        let dir = self.config.feeds.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load_feeds(&dir)).await;
        match loaded {
            Ok(Ok(set)) => {
                let new_topics: Vec<String> = set
                    .topics()
                    .into_iter()
                    .filter(|t| self.sources.feeds.by_topic(t).is_none())
                    .map(str::to_string)
                    .collect();
                if self.create_topics && !new_topics.is_empty() {
                    let names: Vec<&str> = new_topics.iter().map(String::as_str).collect();
                    if let Err(e) =
                        kafka::create_topics(&self.config.kafka, &self.brokers, &names, &[]).await
                    {
                        tracing::warn!(error = %e, "Could not create the topics of new feeds.");
                    }
                }
                tracing::info!(feeds = set.len(), "Feed definitions reloaded.");
                self.metrics
                    .feed_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.metrics.feeds_loaded.set(set.len() as i64);
                self.sources.feeds = Arc::new(set);
                let _ = self.feeds.send(self.sources.feeds.clone());
                self.publish(Vec::new());
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Feed definitions not reloaded; the last good ones stay in force.");
                self.metrics
                    .feed_reloads
                    .with_label_values(&["failure"])
                    .inc();
                self.publish(vec![e.to_string()]);
            }
            Err(e) => tracing::error!(error = %e, "Feed reload task failed."),
        }
    }

    fn reload_network(&mut self) {
        match load_network(&self.config.network.dir) {
            Ok(net) => {
                tracing::info!(suppliers = net.suppliers.len(), "Network files reloaded.");
                self.sources.files = net;
                self.publish(Vec::new());
            }
            Err(e) => {
                tracing::error!(error = %e, "Network files not reloaded; the last good ones stay in force.");
                self.publish(vec![e.to_string()]);
            }
        }
    }

    fn publish_network(&mut self, keys: &[String]) {
        let catalog = self.sources.build();
        for key in keys {
            let result = match catalog.refused_records.get(key) {
                Some(reason) => {
                    tracing::warn!(key, reason = %reason, "Network record refused.");
                    "refused"
                }
                None => "applied",
            };
            self.metrics
                .network_records
                .with_label_values(&[result])
                .inc();
        }
        tracing::info!(records = keys.len(), "Network topic records applied.");
        self.send(catalog);
    }

    fn publish(&mut self, errors: Vec<String>) {
        let mut catalog = self.sources.build();
        catalog.errors.extend(errors);
        self.send(catalog);
    }

    fn send(&self, catalog: Catalog) {
        publish_network_metrics(&self.metrics, &catalog.network);
        let _ = self.catalog.send(Arc::new(catalog));
    }

    /// A consumer of the whole network topic from its beginning (no group offsets: the
    /// compacted topic is the state). `None` when the topic cannot be read.
    async fn network_consumer(&self) -> Option<kafka::Closing<StreamConsumer>> {
        let cfg = self.config.kafka.clone();
        let brokers = self.brokers.clone();
        let topic = self.config.network.topic.clone();
        tokio::task::spawn_blocking(move || network_consumer(&cfg, &brokers, &topic))
            .await
            .ok()
            .flatten()
            .map(kafka::Closing::new)
    }
}

fn network_consumer(cfg: &KafkaConfig, brokers: &str, topic: &str) -> Option<StreamConsumer> {
    let mut c = kafka::consumer_config(cfg, brokers);
    c.set("group.id", format!("{}.network", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer = match c.create() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "No network topic consumer.");
            return None;
        }
    };
    let meta = match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(topic, error = %e, "Network topic metadata unavailable; topic not read.");
            return None;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for t in meta.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let _ = tpl.add_partition_offset(topic, p.id(), Offset::Beginning);
        }
    }
    if tpl.count() == 0 {
        tracing::info!(topic, "Network topic has no partitions; not read.");
        return None;
    }
    if let Err(e) = consumer.assign(&tpl) {
        tracing::warn!(topic, error = %e, "Could not assign the network topic.");
        return None;
    }
    Some(consumer)
}

/// The next record of the network topic: (key, value or tombstone). Never returns when there
/// is no consumer.
async fn recv(consumer: Option<&StreamConsumer>) -> Option<(String, Option<Vec<u8>>)> {
    let Some(c) = consumer else {
        return std::future::pending().await;
    };
    match c.recv().await {
        Ok(m) => {
            let key = String::from_utf8_lossy(m.key()?).into_owned();
            Some((key, m.payload().map(<[u8]>::to_vec)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "Network topic consumer error.");
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        }
    }
}

/// Suppliers per tier.
pub fn publish_network_metrics(metrics: &Metrics, net: &Network) {
    let mut by_tier: BTreeMap<u8, i64> = BTreeMap::new();
    for s in net.suppliers.values() {
        *by_tier.entry(s.tier).or_default() += 1;
    }
    metrics.network_suppliers.reset();
    for (tier, n) in by_tier {
        metrics
            .network_suppliers
            .with_label_values(&[&tier.to_string()])
            .set(n);
    }
}

/// Per part of the network: daily demand and stock (on hand at every site plus open quantity
/// already shipped) from a state snapshot, and the unit price (the network's, else the mean
/// price of its open lines, else 1). Parts without demand are left out.
pub fn part_supply(tables: &crate::state::Tables, net: &Network) -> Vec<network::PartSupply> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;
    #[derive(Default)]
    struct Acc {
        demand: f64,
        stock: f64,
        price_sum: f64,
        price_n: f64,
    }
    let mut acc: BTreeMap<&str, Acc> = net
        .parts
        .keys()
        .map(|p| (p.as_str(), Acc::default()))
        .collect();
    let col = |b: &RecordBatch, name: &str| b.column_by_name(name).cloned();
    if let Some(inv) = tables.get("inventory") {
        if let (Some(part), Some(on_hand), Some(demand)) = (
            col(inv, "part"),
            col(inv, "on_hand"),
            col(inv, "daily_demand"),
        ) {
            let (part, on_hand, demand) = (
                part.as_string::<i32>().clone(),
                on_hand.as_primitive::<Float64Type>().clone(),
                demand.as_primitive::<Float64Type>().clone(),
            );
            for i in 0..inv.num_rows() {
                if let Some(a) = acc.get_mut(part.value(i)) {
                    a.demand += demand.value(i);
                    a.stock += on_hand.value(i);
                }
            }
        }
    }
    if let Some(lines) = tables.get("po_lines") {
        if let (Some(part), Some(open), Some(price), Some(shipment)) = (
            col(lines, "part"),
            col(lines, "open_quantity"),
            col(lines, "unit_price"),
            col(lines, "shipment"),
        ) {
            let (part, open, price, shipment) = (
                part.as_string::<i32>().clone(),
                open.as_primitive::<Float64Type>().clone(),
                price.as_primitive::<Float64Type>().clone(),
                shipment.as_string::<i32>().clone(),
            );
            for i in 0..lines.num_rows() {
                if let Some(a) = acc.get_mut(part.value(i)) {
                    if shipment.is_valid(i) {
                        a.stock += open.value(i);
                    }
                    a.price_sum += price.value(i);
                    a.price_n += 1.0;
                }
            }
        }
    }
    acc.into_iter()
        .filter(|(_, a)| a.demand > 0.0)
        .map(|(part, a)| network::PartSupply {
            part: part.to_string(),
            daily_demand: a.demand,
            stock: a.stock,
            unit_price: net
                .part(part)
                .and_then(|p| p.unit_price)
                .or((a.price_n > 0.0).then(|| a.price_sum / a.price_n))
                .unwrap_or(1.0),
        })
        .collect()
}

/// The network as records of the network topic, in the order a consumer can apply them:
/// suppliers, then parts, then links. Keys `supplier:<id>`, `part:<id>`, `link:<from>><to>`;
/// values the JSON of one entry, as in the YAML files.
pub fn network_records(net: &Network) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push = |key: String, value: Result<Vec<u8>, serde_json::Error>| match value {
        Ok(v) => out.push((key, v)),
        Err(e) => tracing::error!(key, error = %e, "Network entry not serialisable."),
    };
    for s in net.suppliers.values() {
        push(format!("supplier:{}", s.id), serde_json::to_vec(s));
    }
    for p in net.parts.values() {
        push(format!("part:{}", p.id), serde_json::to_vec(p));
    }
    for l in net.links.values() {
        push(format!("link:{}>{}", l.from, l.to), serde_json::to_vec(l));
    }
    out
}

/// Produce the network to the network topic (keyed records, for a compacted topic).
pub async fn publish_network(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    net: &Network,
) -> Result<usize, rdkafka::error::KafkaError> {
    let records = network_records(net);
    for (key, value) in &records {
        let record = rdkafka::producer::FutureRecord::to(topic)
            .key(key.as_bytes())
            .payload(value.as_slice());
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_network_survives_the_topic_round_trip() {
        let sim = crate::sim::Simulator::new(crate::sim::SimConfig::default());
        let net = Network::from_sim(sim.network());
        assert!(net.check().is_empty(), "{:?}", net.check());
        let mut sources = Sources::default();
        // Keys in map order (links first): build() must still apply suppliers first.
        for (k, v) in network_records(&net) {
            sources.records.insert(k, v);
        }
        let catalog = sources.build();
        assert!(
            catalog.refused_records.is_empty(),
            "{:?}",
            catalog.refused_records
        );
        assert_eq!(*catalog.network, net);
        let tables: Vec<&str> = catalog.tables.iter().map(|(n, _)| *n).collect();
        let empty: Vec<&str> = empty_tables().iter().map(|(n, _)| *n).collect();
        assert_eq!(tables, empty, "same tables as planned against");
    }

    #[test]
    fn a_tombstone_deletes_and_a_dangling_link_is_refused() {
        let mut sources = Sources::default();
        let supplier = |id: &str, tier: u8| {
            serde_json::json!({"id": id, "tier": tier})
                .to_string()
                .into_bytes()
        };
        sources
            .records
            .insert("supplier:S1".into(), supplier("S1", 1));
        sources
            .records
            .insert("supplier:S2".into(), supplier("S2", 2));
        sources.records.insert(
            "link:S2>S1".into(),
            serde_json::json!({"from": "S2", "to": "S1", "share": 0.5})
                .to_string()
                .into_bytes(),
        );
        let c = sources.build();
        assert_eq!(c.network.links.len(), 1);
        sources.records.remove("supplier:S1");
        let c = sources.build();
        assert!(c.network.supplier("S1").is_none());
        assert!(
            c.refused_records.contains_key("link:S2>S1"),
            "{:?}",
            c.refused_records
        );
    }
}
