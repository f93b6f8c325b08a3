//! tile-math's integration tests, built as one test binary.

// Test helpers may unwrap: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

/// Reference values computed by mercantile 1.2.1 (see `mercantile/generate.py`).
#[path = "mercantile/cases.rs"]
#[allow(
    clippy::approx_constant,
    clippy::excessive_precision,
    clippy::unreadable_literal
)]
mod cases;
/// Every function that mirrors mercantile, checked against those tables.
mod mercantile_tables;
/// Invariants checked on random tiles and points (proptest).
mod properties;
