//! tessera's benchmarks live in `benches/` (criterion) and `scripts/`
//! (side-by-side comparisons with reference tools). This library is empty;
//! it exists so the benches have a package to belong to.
//!
//! Run them with `cargo bench -p tessera-benches`; results and the commands
//! that produced them are recorded in `docs/performance.md`.
