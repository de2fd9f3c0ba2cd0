//! Shared test helpers of the metrics tests.
pub mod prom;
