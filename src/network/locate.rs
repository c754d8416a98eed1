//! Where the DenseNet sits among a checkpoint's tensors, and what its head is.
//!
//! A DenseNet is wherever `P + "features.conv0.weight"` exists, for any prefix `P` (empty, or a
//! chain of wrapper names: `densenet121.`, `model_ft.`, `backbone.`, `model.`, `ema_model.`,
//! ...). When a file holds several, the one nearest the top of the key tree (the fewest
//! components in `P`) is used, and among equally near ones the first in the file; a caller
//! can name another (`ModelRequest::submodel`), and `ModelInfo` records the choice and the
//! others.
//!
//! The model is then:
//! - the DenseNet under `P`: every tensor under `P` (other than those of a DenseNet nested
//!   deeper) must be one of torchvision's or MONAI's DenseNet tensors (strict validation, as
//!   for a plain torchvision file);
//! - its head: the linear layers under `P + "classifier"` (plain, or in a `Sequential` at any
//!   index), MONAI's `P + "class_layers.out"`, then any linear layers of the wrapper (the
//!   module holding `P`, outside every DenseNet) that take the previous layer's output, in
//!   that order (a torchvision classifier then the wrapper's `fc`; or the wrapper's `fc` alone
//!   when the DenseNet's classifier is `nn.Identity`).
//!
//! Everything else in the file (other networks, a wrapper's other parameters) is not part of
//! the model: it is neither loaded nor validated.
//!
//! MONAI's names (`features.denseblockN.denselayerM.layers.norm1...`) become torchvision's
//! (`...denselayerM.norm1...`): the maths is the same (`monai.networks.nets.DenseNet` with
//! `spatial_dims=2`, its default ReLU and batch norm; its dense layers' dropout is the identity
//! at inference), which `tests/heads.rs` checks against MONAI itself.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use super::head::{Head, HeadItem, HeadLayer};
use super::{DenseNetConfig, ModelError, infer_config};

const CONV0: &str = "features.conv0.weight";

/// The chosen DenseNet's tensors under torchvision's names, and where it was found.
#[derive(Debug)]
pub struct LocatedNetwork {
    /// `features.*` and the head's tensors (see `Head::canonical_key`), plus any other tensor
    /// under the prefix, which validation then names as unexpected.
    pub tensors: HashMap<String, Tensor>,
    pub head: Head,
    /// The architecture read off `tensors`; its classes are the head's.
    pub config: DenseNetConfig,
    /// The prefix of the network's keys (`""` at the top level).
    pub prefix: String,
    /// The prefixes of the file's other DenseNets.
    pub others: Vec<String>,
}

impl LocatedNetwork {
    /// What messages about the network's tensors start with: the file, and the prefix when
    /// the tensors' names are relative to one.
    pub fn subject(&self, file: &str) -> String {
        subject(file, &self.prefix)
    }
}

fn subject(file: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        file.to_string()
    } else {
        format!("{file}, the network under '{prefix}'")
    }
}

/// Where a network with this prefix sits, as messages say it: "under 'model.'".
pub fn place(prefix: &str) -> String {
    if prefix.is_empty() {
        "at the top level".to_string()
    } else {
        format!("under '{prefix}'")
    }
}

/// A linear layer found in the file.
struct FoundLinear {
    /// Its name in the file, without `.weight`.
    key: String,
    weight: Tensor,
    bias: Option<Tensor>,
    inputs: usize,
    outputs: usize,
}

impl FoundLinear {
    fn describe(&self) -> String {
        format!("{} [{}, {}]", self.key, self.outputs, self.inputs)
    }
}

/// Finds the DenseNet (`submodel` names its prefix, or the rule of the module documentation
/// chooses), renames its tensors to torchvision's names and finds its head (`statement`: the
/// layers the model's sidecar states, needed for a head of several linear layers).
pub fn locate(
    file: &str,
    tensors: Vec<(String, Tensor)>,
    submodel: Option<&str>,
    statement: Option<&[HeadItem]>,
) -> Result<LocatedNetwork, ModelError> {
    let prefixes = network_prefixes(&tensors);
    let prefix = choose(file, &tensors, &prefixes, submodel)?.to_string();
    check_spatial_dims(file, &tensors, &prefix)?;
    let others: Vec<String> = prefixes.iter().filter(|p| **p != prefix).cloned().collect();
    let parts = partition(file, tensors, &prefixes, &prefix)?;
    let mut body = parts.body;
    let mut config = infer_config(&subject(file, &prefix), &body, 0)?;
    let (own, rest) = linear_layers(parts.own_head);
    if !rest.is_empty() {
        let mut names: Vec<String> = rest
            .iter()
            .map(|(k, t)| format!("{prefix}{k} {:?}", t.dims()))
            .collect();
        names.sort();
        return Err(ModelError::Head {
            file: file.to_string(),
            reason: format!(
                "its classifier holds tensors that are not a linear layer's ({}): camview runs \
                 heads of linear, ReLU and dropout layers",
                names.join(", ")
            ),
        });
    }
    let (wrapper, _) = linear_layers(parts.wrapper);
    let linears = chain(file, &prefix, config.num_features(), own, wrapper)?;
    let head = stated_head(file, &linears, statement)?;
    config.num_classes = head.num_classes();
    let count = linears.len();
    for (j, linear) in linears.into_iter().enumerate() {
        let key = Head::canonical_key(j, count);
        body.insert(format!("{key}.weight"), linear.weight);
        if let Some(bias) = linear.bias {
            body.insert(format!("{key}.bias"), bias);
        }
    }
    Ok(LocatedNetwork {
        tensors: body,
        head,
        config,
        prefix,
        others,
    })
}

/// Every `P` with a `P + "features.conv0.weight"`, in file order.
fn network_prefixes(tensors: &[(String, Tensor)]) -> Vec<String> {
    tensors
        .iter()
        .filter_map(|(k, _)| k.strip_suffix(CONV0))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .map(String::from)
        .collect()
}

fn components(prefix: &str) -> usize {
    prefix.matches('.').count()
}

/// The prefix `submodel` names, or the one nearest the top, then first in the file.
fn choose<'a>(
    file: &str,
    tensors: &[(String, Tensor)],
    prefixes: &'a [String],
    submodel: Option<&str>,
) -> Result<&'a str, ModelError> {
    if prefixes.is_empty() {
        let mut keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        let sample = if keys.is_empty() {
            "none".to_string()
        } else {
            keys[..keys.len().min(4)].join(", ")
        };
        return Err(ModelError::NotDenseNet {
            file: file.to_string(),
            reason: format!(
                "it has no {CONV0}, under any prefix ({} tensors, e.g. {sample})",
                tensors.len()
            ),
        });
    }
    let Some(wanted) = submodel else {
        let nearest = prefixes.iter().min_by_key(|p| components(p));
        return Ok(nearest.map_or("", String::as_str));
    };
    let wanted = wanted.trim().trim_end_matches('.');
    if let Some(p) = prefixes.iter().find(|p| p.trim_end_matches('.') == wanted) {
        return Ok(p);
    }
    let asked = if wanted.is_empty() {
        String::new()
    } else {
        format!("{wanted}.")
    };
    let found: Vec<String> = prefixes.iter().map(|p| place(p)).collect();
    Err(ModelError::Submodel {
        file: file.to_string(),
        reason: format!(
            "there is no DenseNet {}: the file's DenseNets are {}",
            place(&asked),
            found.join(", ")
        ),
    })
}

/// Refuses a 1-D or 3-D network (MONAI's `spatial_dims`): camview explains 2-D images.
fn check_spatial_dims(
    file: &str,
    tensors: &[(String, Tensor)],
    prefix: &str,
) -> Result<(), ModelError> {
    let key = format!("{prefix}{CONV0}");
    let Some((_, conv0)) = tensors.iter().find(|(k, _)| *k == key) else {
        return Ok(());
    };
    let dims = conv0.dims();
    match dims.len().checked_sub(2) {
        Some(2) | None => Ok(()),
        Some(spatial) => Err(ModelError::Spatial {
            file: file.to_string(),
            reason: format!(
                "{key} has shape {dims:?}: this is a {spatial}-D network (MONAI's \
                 spatial_dims={spatial}), and camview explains 2-D images"
            ),
        }),
    }
}

/// The file's tensors sorted by what they are to the chosen network.
struct Parts {
    /// Under the prefix, outside the head, renamed (relative, torchvision's names).
    body: HashMap<String, Tensor>,
    /// Under `classifier` or `class_layers`, relative names.
    own_head: Vec<(String, Tensor)>,
    /// The wrapper's own tensors (outside every network), full names.
    wrapper: Vec<(String, Tensor)>,
}

/// The prefix of the network a key belongs to: the longest that starts it.
fn owner<'a>(key: &str, prefixes: &'a [String]) -> Option<&'a str> {
    prefixes
        .iter()
        .filter(|p| key.starts_with(p.as_str()))
        .max_by_key(|p| p.len())
        .map(String::as_str)
}

/// The module holding the network: `P` without its last component.
fn parent(prefix: &str) -> &str {
    let inner = prefix.trim_end_matches('.');
    inner.rfind('.').map_or("", |i| &prefix[..=i])
}

fn partition(
    file: &str,
    tensors: Vec<(String, Tensor)>,
    prefixes: &[String],
    prefix: &str,
) -> Result<Parts, ModelError> {
    let wrapper_prefix = parent(prefix);
    let mut parts = Parts {
        body: HashMap::new(),
        own_head: Vec::new(),
        wrapper: Vec::new(),
    };
    for (key, tensor) in tensors {
        match owner(&key, prefixes) {
            Some(p) if p == prefix => {
                let relative = &key[prefix.len()..];
                if ["classifier.", "class_layers."]
                    .iter()
                    .any(|h| relative.starts_with(h))
                {
                    parts.own_head.push((relative.to_string(), tensor));
                    continue;
                }
                let name = torchvision_name(relative);
                if parts.body.insert(name.clone(), tensor).is_some() {
                    return Err(ModelError::NotDenseNet {
                        file: file.to_string(),
                        reason: format!("two of its tensors are both {prefix}{name}"),
                    });
                }
            }
            None if !prefix.is_empty() && key.starts_with(wrapper_prefix) => {
                parts.wrapper.push((key, tensor));
            }
            _ => {}
        }
    }
    Ok(parts)
}

/// MONAI's dense layers keep their modules in a `layers` Sequential:
/// `features.denseblock1.denselayer2.layers.norm1.weight` is torchvision's
/// `features.denseblock1.denselayer2.norm1.weight`.
fn torchvision_name(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["features", block, layer, "layers", rest @ ..]
            if block.starts_with("denseblock") && layer.starts_with("denselayer") =>
        {
            let mut out = vec!["features", block, layer];
            out.extend(rest);
            out.join(".")
        }
        _ => key.to_string(),
    }
}

/// The linear layers among `tensors` (a 2-D `.weight` and its `.bias`), in natural
/// key order (`classifier.2` before `classifier.10`), and the tensors that are not one.
fn linear_layers(tensors: Vec<(String, Tensor)>) -> (Vec<FoundLinear>, Vec<(String, Tensor)>) {
    let mut by_key: HashMap<String, Tensor> = tensors.into_iter().collect();
    let stems: Vec<String> = by_key
        .iter()
        .filter(|(k, t)| k.ends_with(".weight") && t.rank() == 2)
        .filter_map(|(k, _)| k.strip_suffix(".weight").map(String::from))
        .collect();
    let mut linears: Vec<FoundLinear> = stems
        .into_iter()
        .filter_map(|stem| {
            let weight = by_key.remove(&format!("{stem}.weight"))?;
            let (outputs, inputs) = weight.dims2().ok()?;
            // Taken whatever its shape: validation names a misshapen one.
            let bias = by_key.remove(&format!("{stem}.bias"));
            Some(FoundLinear {
                key: stem,
                weight,
                bias,
                inputs,
                outputs,
            })
        })
        .collect();
    linears.sort_by(|a, b| natural_order(&a.key, &b.key));
    (linears, by_key.into_iter().collect())
}

/// Compares dotted keys component by component, numbers as numbers.
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| -> Vec<(u64, String)> {
        s.split('.')
            .map(|c| match c.parse::<u64>() {
                Ok(n) => (n, String::new()),
                Err(_) => (u64::MAX, c.to_string()),
            })
            .collect()
    };
    key(a).cmp(&key(b))
}

/// The head's linear layers in the order they run: the DenseNet's own, each taking the one
/// before's output, then the wrapper's that take the last one's output.
fn chain(
    file: &str,
    prefix: &str,
    num_features: usize,
    own: Vec<FoundLinear>,
    mut wrapper: Vec<FoundLinear>,
) -> Result<Vec<FoundLinear>, ModelError> {
    let head_error = |reason: String| ModelError::Head {
        file: file.to_string(),
        reason,
    };
    let mut width = num_features;
    let mut giver = format!("the network's {num_features} pooled features");
    let mut out: Vec<FoundLinear> = Vec::new();
    for mut linear in own {
        linear.key = format!("{prefix}{}", linear.key);
        if linear.inputs != width {
            return Err(head_error(format!(
                "the classifier's layer {} takes {} features, but it follows {giver}",
                linear.describe(),
                linear.inputs
            )));
        }
        width = linear.outputs;
        giver = format!("{} ({width} outputs)", linear.key);
        out.push(linear);
    }
    loop {
        let next: Vec<usize> = (0..wrapper.len())
            .filter(|&i| wrapper[i].inputs == width)
            .collect();
        match next[..] {
            [] => break,
            [i] => {
                let linear = wrapper.remove(i);
                width = linear.outputs;
                giver = format!("{} ({width} outputs)", linear.key);
                out.push(linear);
            }
            _ => {
                let names: Vec<String> = next.iter().map(|&i| wrapper[i].describe()).collect();
                return Err(head_error(format!(
                    "several linear layers could follow {giver}: {}; camview cannot tell \
                     which one the model runs",
                    names.join(", ")
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(head_error(format!(
            "the DenseNet {} has no classifier: no linear layer (its classifier, \
             class_layers.out, or one of the wrapper's) takes {giver}",
            place(prefix)
        )));
    }
    Ok(out)
}

/// The head from the linear layers found and the sidecar's statement of its layers.
fn stated_head(
    file: &str,
    linears: &[FoundLinear],
    statement: Option<&[HeadItem]>,
) -> Result<Head, ModelError> {
    let found: Vec<String> = linears.iter().map(FoundLinear::describe).collect();
    let sidecar = Path::new(file).with_extension("json").display().to_string();
    let head_error = |reason: String| ModelError::Head {
        file: file.to_string(),
        reason,
    };
    let items: Vec<HeadItem> = match statement {
        Some(items) => items.to_vec(),
        None if linears.len() == 1 => vec![HeadItem::Linear],
        None => {
            let example: Vec<&str> = (0..linears.len())
                .flat_map(|j| {
                    if j == 0 {
                        vec!["linear"]
                    } else {
                        vec!["relu", "linear"]
                    }
                })
                .collect();
            return Err(head_error(format!(
                "its classifier has {} linear layers ({}), and the layers between them (ReLU, \
                 dropout) cannot be read from the file: state the head in order in the model's \
                 sidecar {sidecar}, e.g. \"head\": [\"{}\"] (items: linear, relu, dropout)",
                linears.len(),
                found.join(", "),
                example.join("\", \"")
            )));
        }
    };
    let stated = items.iter().filter(|i| **i == HeadItem::Linear).count();
    if stated != linears.len() {
        return Err(head_error(format!(
            "the sidecar {sidecar} states {stated} linear layers in \"head\", but the file has {}: \
             {}",
            linears.len(),
            found.join(", ")
        )));
    }
    let mut next = linears.iter();
    let layers = items
        .iter()
        .filter_map(|item| match item {
            HeadItem::Linear => next.next().map(|l| HeadLayer::Linear {
                key: l.key.clone(),
                inputs: l.inputs,
                outputs: l.outputs,
            }),
            HeadItem::Relu => Some(HeadLayer::Relu),
            HeadItem::Dropout => Some(HeadLayer::Dropout),
        })
        .collect();
    Ok(Head { layers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::DenseNetConfig;
    use crate::network::test_support::{normal, random_tensors};
    use candle_core::DType;

    fn config() -> DenseNetConfig {
        DenseNetConfig {
            in_channels: 3,
            growth_rate: 4,
            block_config: vec![1, 2],
            num_init_features: 8,
            bn_size: 2,
            num_classes: 3,
        }
    }

    /// `features.*` of `config()` under `prefix`, sorted (a file's order), with `head`'s
    /// linear layers `(key, outputs, inputs)` after them.
    fn network(prefix: &str, seed: u64, head: &[(&str, usize, usize)]) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = random_tensors(&config(), DType::F32, seed)
            .into_iter()
            .filter(|(k, _)| k.starts_with("features."))
            .map(|(k, t)| (format!("{prefix}{k}"), t))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, &(key, outputs, inputs)) in head.iter().enumerate() {
            let s = seed * 100 + i as u64;
            out.push((format!("{key}.weight"), normal(s, &[outputs, inputs], 1.0)));
            out.push((format!("{key}.bias"), normal(s + 50, &[outputs], 1.0)));
        }
        out
    }

    /// `config()`'s pooled width.
    const F: usize = 14;

    fn located(tensors: Vec<(String, Tensor)>) -> LocatedNetwork {
        locate("m.pth", tensors, None, None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(tensors: Vec<(String, Tensor)>, statement: Option<&[HeadItem]>) -> String {
        match locate("m.pth", tensors, None, statement) {
            Ok(l) => panic!("located under {:?}", l.prefix),
            Err(e) => e.to_string(),
        }
    }

    fn linear_keys(head: &Head) -> Vec<String> {
        head.layers
            .iter()
            .filter_map(|l| match l {
                HeadLayer::Linear { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_network_under_any_chain_of_prefixes_gets_torchvision_s_names() {
        assert_eq!(F, config().num_features());
        for prefix in [
            "",
            "module.densenet121.",
            "model_ft.",
            "_orig_mod.backbone.",
            "net.",
        ] {
            let mut tensors = network(prefix, 1, &[(&format!("{prefix}classifier"), 3, F)]);
            // a wrapper's other parameters are not the model's; at the top level there is no
            // wrapper, and strict validation names them
            tensors.push(("loss.pos_weight".into(), normal(9, &[3], 1.0)));
            let mut l = located(tensors);
            assert_eq!(l.prefix, prefix);
            assert!(l.others.is_empty());
            let left_over = l.tensors.remove("loss.pos_weight");
            assert_eq!(left_over.is_some(), prefix.is_empty(), "{prefix}");
            let mut keys: Vec<&String> = l.tensors.keys().collect();
            keys.sort();
            let mut expected: Vec<String> = config()
                .expected_tensors()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            expected.sort();
            assert_eq!(keys, expected.iter().collect::<Vec<_>>(), "{prefix}");
            assert_eq!(l.head, Head::linear(&format!("{prefix}classifier"), F, 3));
        }
    }

    #[test]
    fn of_several_networks_the_nearest_the_top_then_the_first_is_used() {
        let mut tensors = network("model.", 1, &[("model.classifier", 3, F)]);
        tensors.extend(network("ema_model.", 2, &[("ema_model.classifier", 3, F)]));
        let l = located(tensors.clone());
        assert_eq!(
            (l.prefix.as_str(), l.others.clone()),
            ("model.", vec!["ema_model.".into()])
        );
        // the ema copy's tensors are not validated with the model's: none is left over
        assert_eq!(l.tensors.len(), config().expected_tensors().len());

        let mut reversed = network("ema_model.", 2, &[("ema_model.classifier", 3, F)]);
        reversed.extend(network("model.", 1, &[("model.classifier", 3, F)]));
        assert_eq!(located(reversed).prefix, "ema_model.");

        let mut nested = network("a.teacher.", 3, &[("a.teacher.classifier", 3, F)]);
        nested.extend(network("a.", 4, &[("a.classifier", 3, F)]));
        let l = located(nested);
        assert_eq!(
            (l.prefix.as_str(), l.others.clone()),
            ("a.", vec!["a.teacher.".into()])
        );
        assert_eq!(l.tensors.len(), config().expected_tensors().len());

        for (asked, expected) in [("ema_model.", "ema_model."), ("ema_model", "ema_model.")] {
            let l = locate("m.pth", tensors.clone(), Some(asked), None).unwrap();
            assert_eq!(l.prefix, expected);
            assert_eq!(l.others, ["model."]);
        }
        let err = locate("m.pth", tensors, Some("teacher."), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m.pth: there is no DenseNet under 'teacher.': the file's DenseNets are under \
             'model.', under 'ema_model.'"
        );
    }

    #[test]
    fn the_top_level_network_can_be_asked_for_by_an_empty_prefix() {
        let mut tensors = network("ema.", 2, &[("ema.classifier", 3, F)]);
        tensors.extend(network("", 1, &[("classifier", 3, F)]));
        assert_eq!(located(tensors.clone()).prefix, "");
        let l = locate("m.pth", tensors, Some(""), None).unwrap();
        assert_eq!(
            (l.prefix.as_str(), l.others.clone()),
            ("", vec!["ema.".into()])
        );
        assert_eq!(l.tensors.len(), config().expected_tensors().len());
        let only_ema = network("ema.", 2, &[("ema.classifier", 3, F)]);
        let err = locate("m.pth", only_ema, Some(""), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("there is no DenseNet at the top level"),
            "{err}"
        );
    }

    #[test]
    fn tensors_under_the_prefix_stay_for_strict_validation() {
        let mut tensors = network("net.", 1, &[("net.classifier", 3, F)]);
        tensors.push(("net.features.extra.weight".into(), normal(3, &[4], 1.0)));
        tensors.push(("net.fc.weight".into(), normal(4, &[4], 1.0)));
        let l = located(tensors);
        assert!(l.tensors.contains_key("features.extra.weight"));
        assert!(l.tensors.contains_key("fc.weight"));
        assert_eq!(l.subject("m.pth"), "m.pth, the network under 'net.'");
    }

    #[test]
    fn a_resnet_is_not_a_densenet() {
        let tensors = vec![
            ("conv1.weight".to_string(), normal(1, &[2, 2], 1.0)),
            ("fc.weight".to_string(), normal(2, &[2, 2], 1.0)),
        ];
        let err = error(tensors, None);
        assert_eq!(
            err,
            "m.pth: not a DenseNet checkpoint: it has no features.conv0.weight, under any \
             prefix (2 tensors, e.g. conv1.weight, fc.weight)"
        );
    }

    #[test]
    fn a_3d_network_is_refused_as_3d() {
        let mut tensors = network("", 1, &[("class_layers.out", 3, F)]);
        for (k, t) in &mut tensors {
            if k == CONV0 {
                *t = normal(5, &[8, 3, 7, 7, 7], 1.0);
            }
        }
        let err = error(tensors, None);
        assert_eq!(
            err,
            "m.pth: features.conv0.weight has shape [8, 3, 7, 7, 7]: this is a 3-D network \
             (MONAI's spatial_dims=3), and camview explains 2-D images"
        );
    }

    #[test]
    fn monai_names_become_torchvision_s() {
        assert_eq!(
            torchvision_name("features.denseblock2.denselayer11.layers.norm1.weight"),
            "features.denseblock2.denselayer11.norm1.weight"
        );
        for kept in [
            "features.transition1.norm.weight",
            "features.norm5.bias",
            "features.denseblock1.layers.norm1.weight",
        ] {
            assert_eq!(torchvision_name(kept), kept);
        }
        let tensors: Vec<(String, Tensor)> = network("", 1, &[("class_layers.out", 3, F)])
            .into_iter()
            .map(|(k, t)| {
                (
                    k.replace(".norm1", ".layers.norm1")
                        .replace(".conv2", ".layers.conv2"),
                    t,
                )
            })
            .collect();
        assert!(tensors.iter().any(|(k, _)| k.contains(".layers.")));
        let l = located(tensors);
        assert!(
            l.tensors
                .contains_key("features.denseblock2.denselayer2.norm1.weight")
        );
        assert!(l.tensors.contains_key("classifier.weight"));
        assert_eq!(linear_keys(&l.head), ["class_layers.out"]);
    }

    #[test]
    fn one_linear_layer_anywhere_in_a_sequential_head_is_the_classifier() {
        for key in ["classifier.0", "classifier.1", "classifier.fc"] {
            let l = located(network("w.", 1, &[(&format!("w.{key}"), 3, F)]));
            assert_eq!(linear_keys(&l.head), [format!("w.{key}")]);
            assert!(l.head.is_one_linear_map());
            assert!(l.tensors.contains_key("classifier.weight"));
            assert!(l.tensors.contains_key("classifier.bias"));
        }
    }

    #[test]
    fn a_wrapper_s_layer_after_an_identity_classifier_is_the_classifier() {
        let l = located(network("backbone.", 1, &[("fc", 2, F), ("aux.proj", 5, 7)]));
        assert_eq!(linear_keys(&l.head), ["fc"]);
        assert!(l.head.is_one_linear_map());
        assert_eq!(l.tensors.len(), config().feature_tensors().len() + 2);
    }

    #[test]
    fn several_linear_layers_need_the_sidecar_s_statement() {
        let tensors = || {
            network(
                "densenet.",
                1,
                &[("densenet.classifier", 10, F), ("fc", 3, 10)],
            )
        };
        let err = error(tensors(), None);
        assert_eq!(
            err,
            "m.pth: its classifier has 2 linear layers (densenet.classifier [10, 14], fc [3, \
             10]), and the layers between them (ReLU, dropout) cannot be read from the file: \
             state the head in order in the model's sidecar m.json, e.g. \"head\": [\"linear\", \
             \"relu\", \"linear\"] (items: linear, relu, dropout)"
        );
        let stated = [HeadItem::Linear, HeadItem::Relu, HeadItem::Linear];
        let l = locate("m.pth", tensors(), None, Some(&stated)).unwrap();
        assert_eq!(
            l.head.to_string(),
            "linear densenet.classifier [10, 14], relu, linear fc [3, 10]"
        );
        assert!(!l.head.is_one_linear_map());
        for key in [
            "classifier.0.weight",
            "classifier.0.bias",
            "classifier.1.weight",
        ] {
            assert!(l.tensors.contains_key(key), "{key}");
        }
        let err = error(tensors(), Some(&[HeadItem::Dropout, HeadItem::Linear]));
        assert_eq!(
            err,
            "m.pth: the sidecar m.json states 1 linear layers in \"head\", but the file has 2: \
             densenet.classifier [10, 14], fc [3, 10]"
        );
    }

    #[test]
    fn an_mlp_head_runs_in_index_order() {
        let head = [
            ("classifier.0", 6, F),
            ("classifier.10", 3, 5),
            ("classifier.2", 5, 6),
        ];
        let stated = [
            HeadItem::Linear,
            HeadItem::Relu,
            HeadItem::Linear,
            HeadItem::Relu,
            HeadItem::Dropout,
            HeadItem::Linear,
        ];
        let l = locate("m.pth", network("", 1, &head), None, Some(&stated)).unwrap();
        assert_eq!(
            linear_keys(&l.head),
            ["classifier.0", "classifier.2", "classifier.10"]
        );
        assert_eq!(l.head.num_classes(), 3);
    }

    #[test]
    fn heads_that_cannot_be_read_are_refused_with_what_was_found() {
        let err = error(network("m.", 1, &[]), None);
        assert_eq!(
            err,
            "m.pth: the DenseNet under 'm.' has no classifier: no linear layer (its classifier, \
             class_layers.out, or one of the wrapper's) takes the network's 14 pooled features"
        );
        let err = error(network("", 1, &[("classifier.0", 3, 12)]), None);
        assert_eq!(
            err,
            "m.pth: the classifier's layer classifier.0 [3, 12] takes 12 features, but it \
             follows the network's 14 pooled features"
        );
        let err = error(
            network(
                "m.",
                1,
                &[("m.classifier", 4, F), ("fc", 2, 4), ("aux", 2, 4)],
            ),
            None,
        );
        assert_eq!(
            err,
            "m.pth: several linear layers could follow m.classifier (4 outputs): aux [2, 4], fc \
             [2, 4]; camview cannot tell which one the model runs"
        );
        let mut tensors = network("", 1, &[("classifier.0", 3, F)]);
        tensors.push(("classifier.1.running_mean".into(), normal(1, &[3], 1.0)));
        let err = error(tensors, None);
        assert_eq!(
            err,
            "m.pth: its classifier holds tensors that are not a linear layer's \
             (classifier.1.running_mean [3]): camview runs heads of linear, ReLU and dropout layers"
        );
    }
}
