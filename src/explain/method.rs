//! The methods a map can be computed by, and the choice of map a front end asks for.

use serde::{Deserialize, Serialize};

use super::methods::{ExplainError, MethodOptions};
use crate::network::Stage;

/// How a map was computed. Every method but `cam` follows pytorch-grad-cam's definition
/// exactly (see `methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Method {
    /// Zhou et al. 2016: the classifier's weights applied to the final feature maps (norm5 only).
    #[default]
    #[serde(rename = "cam")]
    Cam,
    /// Selvaraju et al. 2017: channels weighted by their mean gradient.
    #[serde(rename = "gradcam")]
    GradCam,
    /// Chattopadhyay et al. 2018: higher-order gradient weights.
    #[serde(rename = "gradcam++")]
    GradCamPlusPlus,
    /// Fu et al. 2020: gradients weighted by the normalised activation.
    #[serde(rename = "xgradcam")]
    XGradCam,
    /// Draelos and Carin 2020: gradient times activation, element-wise, summed over channels.
    #[serde(rename = "hirescam")]
    HiResCam,
    /// Jiang et al. 2021: positive gradient times activation, element-wise.
    #[serde(rename = "layercam")]
    LayerCam,
    /// Wang et al. 2020: channels weighted by the class score of the input masked by them.
    #[serde(rename = "scorecam")]
    ScoreCam,
    /// Muhammad and Yeasin 2020: first principal component of the activations (class-agnostic).
    #[serde(rename = "eigencam")]
    EigenCam,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Self::Cam,
        Self::GradCam,
        Self::GradCamPlusPlus,
        Self::XGradCam,
        Self::HiResCam,
        Self::LayerCam,
        Self::ScoreCam,
        Self::EigenCam,
    ];

    /// The short name: the command line's, the provenance's and the file names'.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cam => "cam",
            Self::GradCam => "gradcam",
            Self::GradCamPlusPlus => "gradcam++",
            Self::XGradCam => "xgradcam",
            Self::HiResCam => "hirescam",
            Self::LayerCam => "layercam",
            Self::ScoreCam => "scorecam",
            Self::EigenCam => "eigencam",
        }
    }

    /// The name people write in papers (the viewer's picker, captions).
    pub fn title(self) -> &'static str {
        match self {
            Self::Cam => "CAM",
            Self::GradCam => "Grad-CAM",
            Self::GradCamPlusPlus => "Grad-CAM++",
            Self::XGradCam => "XGrad-CAM",
            Self::HiResCam => "HiResCAM",
            Self::LayerCam => "LayerCAM",
            Self::ScoreCam => "Score-CAM",
            Self::EigenCam => "Eigen-CAM",
        }
    }

    /// Whether the method back-propagates the class score.
    pub fn uses_gradients(self) -> bool {
        matches!(
            self,
            Self::GradCam
                | Self::GradCamPlusPlus
                | Self::XGradCam
                | Self::HiResCam
                | Self::LayerCam
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which map a front end asks for: the method, the layer it explains, and the methods'
/// options. Everything that changes a map's values, so it also keys the viewer's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MapChoice {
    pub method: Method,
    pub layer: Stage,
    pub options: MethodOptions,
}

impl MapChoice {
    pub fn new(method: Method, layer: Stage) -> Self {
        Self {
            method,
            layer,
            options: MethodOptions::default(),
        }
    }

    /// Refuses a choice no model can satisfy (CAM away from norm5).
    pub fn check(&self) -> Result<(), ExplainError> {
        if self.method == Method::Cam && self.layer != Stage::Norm5 {
            return Err(ExplainError::CamNeedsNorm5 { layer: self.layer });
        }
        Ok(())
    }
}
