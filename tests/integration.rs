//! The one integration-test binary: real broker (tansu) and the embedded default, through the
//! real HTTP endpoints.

mod backtest;
mod embedded;
mod feeds;
mod onboarding;
mod pipeline;
mod prometheus;
mod recovery;
mod reload;
mod sandbox;
mod status_page;
mod util;
