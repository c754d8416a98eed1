//! The demo model's tooling, apart from the engine: the synthetic scans it learns from
//! (`synth`), training with candle-nn (`train`), and the classification scores and confidence
//! intervals `eval` reports (`scores`; the localisation scores are `explain::agreement`).

pub mod scores;
pub mod synth;
pub mod train;
