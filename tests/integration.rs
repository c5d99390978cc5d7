//! The one integration-test binary: real broker (tansu) and the embedded default, through the
//! real HTTP endpoints.

mod embedded;
mod pipeline;
mod prometheus;
mod status_page;
mod util;
