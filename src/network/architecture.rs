//! Reading the architecture off a checkpoint's tensors, and checking them strictly against it.

use std::collections::{BTreeMap, HashMap};

use candle_core::Tensor;

use super::{DenseNetConfig, Head, ModelError};
use crate::imaging::preprocess::INPUT_CHANNELS;

fn dims(map: &HashMap<String, Tensor>, key: &str) -> Option<Vec<usize>> {
    map.get(key).map(|t| t.dims().to_vec())
}

/// Reads the architecture off the tensors (torchvision's names, see `locate`): the user never
/// has to say "densenet121". The number of classes is the head's, found once the width of the
/// features is known (`locate` passes 0, then the head's).
pub fn infer_config(
    file: &str,
    map: &HashMap<String, Tensor>,
    num_classes: usize,
) -> Result<DenseNetConfig, ModelError> {
    let not_densenet = |reason: String| ModelError::NotDenseNet {
        file: file.to_string(),
        reason,
    };
    let Some(conv0) = dims(map, "features.conv0.weight") else {
        return Err(not_densenet("it has no features.conv0.weight".to_string()));
    };
    let [init, in_channels, 7, 7] = conv0[..] else {
        return Err(not_densenet(format!(
            "features.conv0.weight has shape {conv0:?}, expected [C, 1 or 3, 7, 7]"
        )));
    };
    if !INPUT_CHANNELS.contains(&in_channels) {
        return Err(ModelError::InputChannels {
            file: file.to_string(),
            init,
            channels: in_channels,
        });
    }
    let mut block_config = Vec::new();
    while map.contains_key(&format!(
        "features.denseblock{}.denselayer1.conv1.weight",
        block_config.len() + 1
    )) {
        let b = block_config.len() + 1;
        let mut layers = 0;
        while map.contains_key(&format!(
            "features.denseblock{b}.denselayer{}.conv1.weight",
            layers + 1
        )) {
            layers += 1;
        }
        block_config.push(layers);
    }
    let conv1 = dims(map, "features.denseblock1.denselayer1.conv1.weight");
    let conv2 = dims(map, "features.denseblock1.denselayer1.conv2.weight");
    let (Some(conv1), Some(conv2)) = (conv1, conv2) else {
        return Err(not_densenet("it has no dense blocks".to_string()));
    };
    let growth_rate = conv2.first().copied().unwrap_or(0);
    let inner = conv1.first().copied().unwrap_or(0);
    if growth_rate == 0 || inner == 0 || inner % growth_rate != 0 {
        return Err(not_densenet(format!(
            "the first dense layer's shapes ({conv1:?}, {conv2:?}) are not a DenseNet's"
        )));
    }
    Ok(DenseNetConfig {
        in_channels,
        growth_rate,
        block_config,
        num_init_features: init,
        bn_size: inner / growth_rate,
        num_classes,
    })
}

/// Strict validation: every tensor of the DenseNet and its head present with its exact shape,
/// nothing else. A model is never run half-loaded.
pub fn validate(
    file: &str,
    config: &DenseNetConfig,
    head: &Head,
    map: &HashMap<String, Tensor>,
) -> Result<(), ModelError> {
    const SHOWN: usize = 5;
    let expected: BTreeMap<String, Vec<usize>> = config
        .feature_tensors()
        .into_iter()
        .chain(head.expected_tensors())
        .collect();
    let mut missing = Vec::new();
    let mut shapes = Vec::new();
    for (key, shape) in &expected {
        match map.get(key) {
            None => missing.push(key.clone()),
            Some(t) if t.dims() != shape.as_slice() => {
                shapes.push(format!("{key} is {:?}, expected {shape:?}", t.dims()))
            }
            Some(_) => {}
        }
    }
    let mut unexpected: Vec<String> = map
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    unexpected.sort();
    let mut parts = Vec::new();
    for (what, list) in [
        ("missing", &missing),
        ("unexpected", &unexpected),
        ("wrong shape", &shapes),
    ] {
        if !list.is_empty() {
            let shown: Vec<&str> = list.iter().take(SHOWN).map(String::as_str).collect();
            let more = list.len().saturating_sub(SHOWN);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            parts.push(format!("{} {what}: {}{tail}", list.len(), shown.join(", ")));
        }
    }
    if parts.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Mismatch {
            file: file.to_string(),
            architecture: config.architecture_name(),
            details: parts.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::test_support::random_tensors;
    use candle_core::{DType, Device};

    fn tensors_of(config: &DenseNetConfig) -> HashMap<String, Tensor> {
        random_tensors(config, DType::F32, 1)
    }

    fn head_of(config: &DenseNetConfig) -> Head {
        Head::linear("classifier", config.num_features(), config.num_classes)
    }

    #[test]
    fn infers_every_torchvision_preset_and_custom_configs() {
        for config in [
            DenseNetConfig::densenet121(2),
            DenseNetConfig::densenet161(5),
            DenseNetConfig::densenet169(3),
            DenseNetConfig::densenet201(1000),
            DenseNetConfig {
                in_channels: 3,
                growth_rate: 4,
                block_config: vec![1, 2, 1],
                num_init_features: 8,
                bn_size: 3,
                num_classes: 2,
            },
            DenseNetConfig {
                in_channels: 1,
                ..DenseNetConfig::densenet121(14)
            },
        ] {
            let map = tensors_of(&config);
            assert_eq!(map.len(), config.expected_tensors().len());
            let head = head_of(&config);
            let inferred = infer_config("m.pth", &map, config.num_classes).unwrap();
            assert_eq!(inferred, config);
            validate("m.pth", &inferred, &head, &map).unwrap();
        }
        assert_eq!(
            DenseNetConfig::densenet161(5).architecture_name(),
            "densenet161"
        );
    }

    #[test]
    fn validation_names_missing_unexpected_and_misshapen_tensors() {
        let config = DenseNetConfig {
            in_channels: 3,
            growth_rate: 4,
            block_config: vec![1, 2, 1],
            num_init_features: 8,
            bn_size: 3,
            num_classes: 2,
        };
        let mut map = tensors_of(&config);
        map.remove("features.norm5.running_var");
        map.insert(
            "extra.weight".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        map.insert(
            "features.norm0.bias".into(),
            Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = validate("m.pth", &config, &head_of(&config), &map)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.pth: the tensors do not match"), "{err}");
        assert!(
            err.contains("1 missing: features.norm5.running_var"),
            "{err}"
        );
        assert!(err.contains("1 unexpected: extra.weight"), "{err}");
        assert!(
            err.contains("features.norm0.bias is [7], expected [8]"),
            "{err}"
        );
    }
    #[test]
    fn a_first_convolution_of_two_channels_is_refused_by_name() {
        let config = DenseNetConfig {
            in_channels: 2,
            ..DenseNetConfig::densenet121(2)
        };
        let err = infer_config("two.pth", &tensors_of(&config), 2)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "two.pth: the network takes 2 input channels (features.conv0.weight is \
             [64, 2, 7, 7]); camview feeds a network 1 (grayscale) or 3 (RGB) channels"
        );
    }
}
