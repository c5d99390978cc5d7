//! The one integration-test binary: real broker (tansu), real HTTP endpoints.

mod pipeline;
mod util;
