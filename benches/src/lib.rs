//! Criterion benchmarks of Mephisto against peers; the benches live in `benches/`.
