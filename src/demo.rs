//! The demo model and images embedded in the binary: what `camview` shows on first launch and
//! what the commands use when no `--model` is given. How the model was made, on what, and its
//! scores: assets/demo/MODEL_CARD.md.

use crate::network::{Classifier, ModelError, ModelSidecar};

/// The trained weights (`camview train`, see the model card).
const MODEL: &[u8] = include_bytes!("../assets/demo/model.safetensors");
/// Its labels and preprocessing.
const SIDECAR: &str = include_str!("../assets/demo/model.json");

/// The name the demo model goes by in messages and provenance.
pub const DEMO_MODEL_NAME: &str = "embedded:camview-demo";

/// Synthetic scans that ship with camview, by file name.
pub const DEMO_IMAGES: [(&str, &[u8]); 5] = [
    (
        "demo_lesion_1.bmp",
        include_bytes!("../assets/demo/demo_lesion_1.bmp"),
    ),
    (
        "demo_lesion_2.bmp",
        include_bytes!("../assets/demo/demo_lesion_2.bmp"),
    ),
    (
        "demo_lesion_3.bmp",
        include_bytes!("../assets/demo/demo_lesion_3.bmp"),
    ),
    (
        "demo_normal_1.bmp",
        include_bytes!("../assets/demo/demo_normal_1.bmp"),
    ),
    (
        "demo_normal_2.bmp",
        include_bytes!("../assets/demo/demo_normal_2.bmp"),
    ),
];

/// The embedded demo model.
pub fn demo_classifier() -> Result<Classifier, ModelError> {
    let sidecar: ModelSidecar = serde_json::from_str(SIDECAR).map_err(|e| ModelError::Labels {
        file: DEMO_MODEL_NAME.to_string(),
        reason: format!("the embedded sidecar is invalid: {e}"),
    })?;
    Classifier::from_bytes(DEMO_MODEL_NAME, MODEL, Some(sidecar))
}

/// The demo images as (file name, BMP bytes).
pub fn demo_images() -> Vec<(&'static str, &'static [u8])> {
    DEMO_IMAGES.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_model_loads_and_its_images_decode() {
        let model = demo_classifier().unwrap();
        assert_eq!(model.labels, ["normal", "lesion"]);
        assert_eq!(model.info.file, DEMO_MODEL_NAME);
        for (name, bytes) in demo_images() {
            let image = crate::imaging::decode_image(name, bytes).unwrap();
            assert!(image.width() >= 128, "{name}");
        }
    }
}
