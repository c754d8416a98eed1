//! The explanation maths: one forward pass gives an `Analysis`; class activation maps for any
//! class, by any method at any layer, come from it (`explain_image`, the one analysis path).

pub mod agreement;
mod analysis;
pub mod faithfulness;
mod map;
mod method;
pub mod methods;
pub mod sanity;
pub mod similarity;

pub use crate::network::Stage;
pub use crate::network::softmax;
pub use analysis::{
    Analysis, AnalysisError, analyse, class_activation_maps, explain_image, explain_image_each,
    forward_pass_choice,
};
pub use map::{ClassActivationMap, Normalisation};
pub use method::{MapChoice, Method};
pub use methods::{
    Classes, ExplainError, ExplainedMaps, LayerActivations, MethodOptions, NoProgress, Progress,
};
