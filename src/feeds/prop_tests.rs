//! Property tests: no byte sequence on a supplier feed's topic panics the mapping, and every
//! record a message yields is either mapped to events the decoder then judges, or rejected
//! with a reason. Runs the repository's own feed definitions and the test fixtures.

use proptest::prelude::*;

use crate::feeds::{load_file, Feed};

fn feeds() -> Vec<(Feed, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("tests/fixtures/feeds");
    let mut out = Vec::new();
    for (def, sample) in [
        ("tier2-orders.yaml", "tier2-orders.csv"),
        ("epcis-milestones.yaml", "epcis-milestones.json"),
    ] {
        let feed = load_file(&fixtures.join(def)).expect("fixture feed loads");
        let sample = std::fs::read(fixtures.join(sample)).expect("fixture sample");
        out.push((feed, sample));
    }
    for entry in std::fs::read_dir(root.join("feeds")).expect("feeds dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let feed = load_file(&path).expect("repository feed loads");
            out.push((feed, Vec::new()));
        }
    }
    out
}

/// Map, then decode what was mapped: nothing may panic, every record is accounted for.
fn check(feed: &Feed, payload: &[u8]) -> Result<(), TestCaseError> {
    let records = feed.map_message(payload);
    let mut events = Vec::new();
    for r in &records {
        match &r.result {
            Ok(evs) => events.extend(evs.iter().cloned()),
            Err(e) => prop_assert!(!e.detail.is_empty(), "a reject says why: {e:?}"),
        }
    }
    let payloads: Vec<Option<Vec<u8>>> = events.into_iter().map(Some).collect();
    crate::ingest::prop_tests::accounted(&payloads)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_feed(payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for (feed, _) in feeds() {
            check(&feed, &payload)?;
        }
    }

    /// Real samples with bytes overwritten, inserted and cut: close to what a broken
    /// exporter sends, so the mapping gets far into its paths.
    #[test]
    fn mutated_samples_never_panic_a_feed(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        for (feed, sample) in feeds() {
            if sample.is_empty() {
                continue;
            }
            let mut bytes = sample.clone();
            for (at, b, op) in &edits {
                let i = at.index(bytes.len().max(1));
                match op {
                    0 if i < bytes.len() => bytes[i] = *b,
                    1 => bytes.insert(i.min(bytes.len()), *b),
                    _ if i < bytes.len() => { bytes.remove(i); }
                    _ => {}
                }
            }
            bytes.truncate(cut.index(bytes.len().max(1)) + 1);
            check(&feed, &bytes)?;
        }
    }
}
