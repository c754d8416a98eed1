//! The demo model embedded in the binary, used when no `--model` is given.

use crate::network::{Classifier, ModelError};

/// The embedded demo model. Training it is a separate step (`camview train`, not yet built), so
/// this build has none and says so.
pub fn demo_classifier() -> Result<Classifier, ModelError> {
    Err(ModelError::NoModel {
        file: "demo model".to_string(),
        reason: "this build of camview has no embedded demo model yet; pass --model FILE \
                 (a DenseNet checkpoint: .pth, .pt or .safetensors)"
            .to_string(),
    })
}
