//! The demo model's tooling, apart from the engine: the synthetic scans it learns from
//! (`synth`), training with candle-nn (`train`), and the localisation scores `eval` reports
//! (`scores`).

pub mod scores;
pub mod synth;
pub mod train;
