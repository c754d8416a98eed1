//! What both forward paths share: the configuration that fixes a DenseNet's tensors (with
//! torchvision's exact key names), the stages a map can be computed at, and what a forward
//! pass yields.

use candle_core::Tensor;

/// Batch norm epsilon used by torchvision's DenseNet.
pub(crate) const BN_EPS: f64 = 1e-5;

/// The hyper-parameters that fix a DenseNet's tensors (dropout does not exist at inference).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DenseNetConfig {
    /// conv0's input channels: 3 (RGB) or 1 (grayscale, as many X-ray models). Records written
    /// before camview read it say nothing, and their networks were RGB.
    #[serde(default = "rgb_channels")]
    pub in_channels: usize,
    pub growth_rate: usize,
    pub block_config: Vec<usize>,
    pub num_init_features: usize,
    pub bn_size: usize,
    pub num_classes: usize,
}

/// torchvision's DenseNets, and every network camview read before 1-channel ones, take RGB.
fn rgb_channels() -> usize {
    3
}

impl DenseNetConfig {
    pub fn densenet121(num_classes: usize) -> Self {
        Self::preset(32, &[6, 12, 24, 16], 64, num_classes)
    }
    pub fn densenet161(num_classes: usize) -> Self {
        Self::preset(48, &[6, 12, 36, 24], 96, num_classes)
    }
    pub fn densenet169(num_classes: usize) -> Self {
        Self::preset(32, &[6, 12, 32, 32], 64, num_classes)
    }
    pub fn densenet201(num_classes: usize) -> Self {
        Self::preset(32, &[6, 12, 48, 32], 64, num_classes)
    }

    fn preset(growth: usize, blocks: &[usize], init: usize, num_classes: usize) -> Self {
        Self {
            in_channels: rgb_channels(),
            growth_rate: growth,
            block_config: blocks.to_vec(),
            num_init_features: init,
            bn_size: 4,
            num_classes,
        }
    }

    /// torchvision's name for this configuration, or a description of a custom one; a
    /// network that does not take RGB says how many channels it takes.
    pub fn architecture_name(&self) -> String {
        let rgb = Self {
            in_channels: rgb_channels(),
            ..self.clone()
        };
        let preset = [
            ("densenet121", Self::densenet121(self.num_classes)),
            ("densenet161", Self::densenet161(self.num_classes)),
            ("densenet169", Self::densenet169(self.num_classes)),
            ("densenet201", Self::densenet201(self.num_classes)),
        ]
        .into_iter()
        .find(|(_, preset)| *preset == rgb);
        let name = match preset {
            Some((name, _)) => name.to_string(),
            None => {
                let blocks: Vec<String> = self.block_config.iter().map(usize::to_string).collect();
                format!(
                    "densenet (growth {}, blocks {}, init {}, bn_size {})",
                    self.growth_rate,
                    blocks.join("-"),
                    self.num_init_features,
                    self.bn_size
                )
            }
        };
        match self.in_channels {
            3 => name,
            1 => format!("{name}, 1 input channel"),
            c => format!("{name}, {c} input channels"),
        }
    }

    /// The stages a map can be computed at, in network order:
    /// `features.denseblock1`, `features.transition1`, ..., `features.norm5`.
    pub fn stages(&self) -> Vec<Stage> {
        let n = self.block_config.len();
        let mut out = Vec::with_capacity(2 * n);
        for i in 1..=n {
            out.push(Stage::DenseBlock(i));
            if i < n {
                out.push(Stage::Transition(i));
            }
        }
        out.push(Stage::Norm5);
        out
    }

    /// Number of channels of the final feature maps (the classifier's input).
    pub fn num_features(&self) -> usize {
        let mut channels = self.num_init_features;
        for (i, &layers) in self.block_config.iter().enumerate() {
            channels += layers * self.growth_rate;
            if i + 1 != self.block_config.len() {
                channels /= 2;
            }
        }
        channels
    }

    /// Every tensor a torchvision state dict of this configuration holds, with its shape
    /// (`num_batches_tracked` excluded: it plays no part at inference): `features.*` and
    /// torchvision's one-layer `classifier`.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = self.feature_tensors();
        let channels = self.num_features();
        out.push(("classifier.weight".into(), vec![self.num_classes, channels]));
        out.push(("classifier.bias".into(), vec![self.num_classes]));
        out
    }

    /// The tensors of `features` (everything before the head), with their shapes.
    pub fn feature_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{prefix}.{p}"), vec![c]));
            }
        };
        let init = self.num_init_features;
        out.push((
            "features.conv0.weight".into(),
            vec![init, self.in_channels, 7, 7],
        ));
        bn(&mut out, "features.norm0", init);
        let mut channels = init;
        let inner = self.bn_size * self.growth_rate;
        for (i, &layers) in self.block_config.iter().enumerate() {
            for j in 0..layers {
                let p = format!("features.denseblock{}.denselayer{}", i + 1, j + 1);
                let c_in = channels + j * self.growth_rate;
                bn(&mut out, &format!("{p}.norm1"), c_in);
                out.push((format!("{p}.conv1.weight"), vec![inner, c_in, 1, 1]));
                bn(&mut out, &format!("{p}.norm2"), inner);
                out.push((
                    format!("{p}.conv2.weight"),
                    vec![self.growth_rate, inner, 3, 3],
                ));
            }
            channels += layers * self.growth_rate;
            if i + 1 != self.block_config.len() {
                let p = format!("features.transition{}", i + 1);
                bn(&mut out, &format!("{p}.norm"), channels);
                out.push((
                    format!("{p}.conv.weight"),
                    vec![channels / 2, channels, 1, 1],
                ));
                channels /= 2;
            }
        }
        bn(&mut out, "features.norm5", channels);
        out
    }
}

/// What one forward pass yields.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `[batch, num_classes]`
    pub logits: Tensor,
    /// `A = relu(features.norm5(..))`, `[batch, num_features, h, w]`: the maps CAM weighs.
    pub features: Tensor,
}

/// A named stage of torchvision's `features`, whose output a map can be computed at.
///
/// `Norm5` is `relu(features.norm5(..))`: torchvision applies that ReLU in `DenseNet.forward`,
/// outside `features`, so a hook on `features.norm5` (or `features[-1]`) in PyTorch sees the
/// pre-ReLU map. Ours is the post-ReLU one, the activations CAM weighs and the classifier sees.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub enum Stage {
    /// `features.denseblock{i}` (1-based): the concatenated maps, before the transition.
    DenseBlock(usize),
    /// `features.transition{i}` (1-based): after its 2x2 average pooling.
    Transition(usize),
    /// `features.norm5` followed by torchvision's ReLU.
    #[default]
    Norm5,
}

impl Stage {
    /// torchvision's module name, e.g. `features.denseblock3`.
    pub fn name(self) -> String {
        match self {
            Self::DenseBlock(i) => format!("features.denseblock{i}"),
            Self::Transition(i) => format!("features.transition{i}"),
            Self::Norm5 => "features.norm5".to_string(),
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;

    /// `features.denseblock2`, `denseblock2`, `features.transition1`, `features.norm5`, `norm5`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix("features.").unwrap_or(t);
        let number = |rest: &str| rest.parse::<usize>().ok().filter(|&i| i >= 1);
        let stage = if t == "norm5" {
            Some(Self::Norm5)
        } else if let Some(rest) = t.strip_prefix("denseblock") {
            number(rest).map(Self::DenseBlock)
        } else if let Some(rest) = t.strip_prefix("transition") {
            number(rest).map(Self::Transition)
        } else {
            None
        };
        stage.ok_or_else(|| {
            format!(
                "unknown layer '{s}': use features.denseblockN, features.transitionN or features.norm5"
            )
        })
    }
}

impl From<Stage> for String {
    fn from(stage: Stage) -> Self {
        stage.name()
    }
}

impl TryFrom<String> for Stage {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_torchvision_feature_counts() {
        assert_eq!(DenseNetConfig::densenet121(1000).num_features(), 1024);
        assert_eq!(DenseNetConfig::densenet161(1000).num_features(), 2208);
        assert_eq!(DenseNetConfig::densenet169(1000).num_features(), 1664);
        assert_eq!(DenseNetConfig::densenet201(1000).num_features(), 1920);
    }

    #[test]
    fn densenet121_tensor_count_matches_torchvision() {
        // torchvision's densenet121 state dict holds 727 entries, 121 of them num_batches_tracked
        // (one per batch norm: norm0, 2 x 58 dense layers, 3 transitions, norm5).
        let expected = DenseNetConfig::densenet121(1000).expected_tensors();
        assert_eq!(expected.len(), 727 - 121);
    }

    #[test]
    fn a_grayscale_network_is_named_with_its_channel_and_old_records_read_as_rgb() {
        let gray = DenseNetConfig {
            in_channels: 1,
            ..DenseNetConfig::densenet121(14)
        };
        assert_eq!(gray.architecture_name(), "densenet121, 1 input channel");
        assert_eq!(gray.expected_tensors()[0].1, [64, 1, 7, 7]);
        // A record written before `in_channels` existed.
        let old = r#"{"growth_rate": 32, "block_config": [6, 12, 24, 16],
                      "num_init_features": 64, "bn_size": 4, "num_classes": 2}"#;
        let config: DenseNetConfig = serde_json::from_str(old).unwrap();
        assert_eq!(config, DenseNetConfig::densenet121(2));
        assert_eq!(config.architecture_name(), "densenet121");
    }
}
