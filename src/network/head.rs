//! The head: what turns the pooled features into the logits. torchvision's is one linear layer
//! (`classifier`), and then CAM is exact: a logit is the mean of its class's map plus the bias.
//! Other people's heads may be a `Sequential` holding one linear layer among dropouts (still
//! one linear map), or several linear layers with ReLUs between them (an MLP, or a wrapper's
//! `fc` after the DenseNet's own classifier): those run exactly too, but CAM is not defined for
//! them (the decision is not one weighted sum of the final maps), so only the methods that
//! follow the decision through the head by its gradient explain them.
//!
//! Which layers a head has between its linear layers cannot be read off a state dict (ReLU and
//! dropout have no tensors), so a head of several linear layers is loaded only when the model's
//! sidecar states it (`"head": ["linear", "relu", "linear"]`).

use candle_core::{Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

/// A layer of the head as a model's sidecar states it: `"linear"`, `"relu"` or `"dropout"`.
///
/// An output activation (sigmoid, softmax) is not a layer of the head: camview's logits are the
/// head's output before it, and the sidecar's `"activation"` says which one the model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HeadItem {
    Linear,
    Relu,
    /// The identity at inference.
    Dropout,
}

impl HeadItem {
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Relu => "relu",
            Self::Dropout => "dropout",
        }
    }
}

impl TryFrom<String> for HeadItem {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linear" => Ok(Self::Linear),
            "relu" => Ok(Self::Relu),
            "dropout" => Ok(Self::Dropout),
            "sigmoid" | "softmax" => Err(format!(
                "'{s}' is the model's output activation, not a layer of its head: leave it out \
                 of \"head\" (the sidecar's \"activation\" states it)"
            )),
            _ => Err(format!(
                "unknown head layer '{s}': a head is stated with \"linear\", \"relu\" and \
                 \"dropout\""
            )),
        }
    }
}

impl From<HeadItem> for String {
    fn from(item: HeadItem) -> Self {
        item.name().to_string()
    }
}

/// A layer of a loaded head, as provenance records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "layer", rename_all = "lowercase")]
pub enum HeadLayer {
    /// `nn.Linear`; `key` is its name in the file (`densenet121.classifier.0`, `fc`, ...).
    Linear {
        key: String,
        inputs: usize,
        outputs: usize,
    },
    Relu,
    Dropout,
}

/// The layers after global average pooling, in the order they run. Empty only in provenance
/// written before heads were recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Head {
    pub layers: Vec<HeadLayer>,
}

impl Head {
    /// torchvision's head: one linear layer.
    pub fn linear(key: &str, inputs: usize, outputs: usize) -> Self {
        Self {
            layers: vec![HeadLayer::Linear {
                key: key.to_string(),
                inputs,
                outputs,
            }],
        }
    }

    /// The linear layers' `(inputs, outputs)`, in order.
    fn linears(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.layers.iter().filter_map(|l| match l {
            HeadLayer::Linear {
                inputs, outputs, ..
            } => Some((*inputs, *outputs)),
            _ => None,
        })
    }

    /// Whether the head is one linear map of the pooled features (one linear layer, dropouts
    /// aside): then CAM is exact, and is the evidence the decision is made of.
    pub fn is_one_linear_map(&self) -> bool {
        self.layers
            .iter()
            .all(|l| matches!(l, HeadLayer::Linear { .. } | HeadLayer::Dropout))
            && self.linears().count() == 1
    }

    /// The number of outputs (classes): the last linear layer's.
    pub fn num_classes(&self) -> usize {
        self.linears().last().map_or(0, |(_, outputs)| outputs)
    }

    /// The name linear layer `index` goes by among the network's tensors: torchvision's
    /// `classifier` for a head of one linear layer (so the differentiable network, training and
    /// CAM see torchvision's layout), `classifier.{index}` otherwise.
    pub fn canonical_key(index: usize, count: usize) -> String {
        if count == 1 {
            "classifier".to_string()
        } else {
            format!("classifier.{index}")
        }
    }

    /// The head's tensors under their canonical names, with their shapes.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let count = self.linears().count();
        self.linears()
            .enumerate()
            .flat_map(|(j, (inputs, outputs))| {
                let key = Self::canonical_key(j, count);
                [
                    (format!("{key}.weight"), vec![outputs, inputs]),
                    (format!("{key}.bias"), vec![outputs]),
                ]
            })
            .collect()
    }
}

impl std::fmt::Display for Head {
    /// `linear densenet.classifier [10, 1920], relu, linear fc [3, 10]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .layers
            .iter()
            .map(|l| match l {
                HeadLayer::Linear {
                    key,
                    inputs,
                    outputs,
                } => format!("linear {key} [{outputs}, {inputs}]"),
                HeadLayer::Relu => "relu".to_string(),
                HeadLayer::Dropout => "dropout".to_string(),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A step of the head as the networks run it.
#[derive(Debug, Clone)]
enum Step<L> {
    Linear(L),
    Relu,
    /// Dropout at inference.
    Identity,
}

impl<L> Step<L> {
    /// The steps of `head`, each linear layer `j` built by `linear(j, count, inputs, outputs)`.
    fn all<E>(
        head: &Head,
        mut linear: impl FnMut(usize, usize, usize, usize) -> std::result::Result<L, E>,
    ) -> std::result::Result<Vec<Self>, E> {
        let count = head.linears().count();
        let mut j = 0;
        head.layers
            .iter()
            .map(|layer| {
                Ok(match layer {
                    HeadLayer::Linear {
                        inputs, outputs, ..
                    } => {
                        j += 1;
                        Step::Linear(linear(j - 1, count, *inputs, *outputs)?)
                    }
                    HeadLayer::Relu => Step::Relu,
                    HeadLayer::Dropout => Step::Identity,
                })
            })
            .collect()
    }
}

/// The head in candle, differentiable: the gradient methods back-propagate through it.
#[derive(Debug, Clone)]
pub(crate) struct HeadNet {
    steps: Vec<Step<Linear>>,
    /// The last linear layer (the classes' weights).
    last: Linear,
}

impl HeadNet {
    /// The head's layers from `vb` (canonical names, see `Head::canonical_key`).
    pub(crate) fn new(head: &Head, vb: &VarBuilder) -> Result<Self> {
        let steps = Step::all(head, |j, count, inputs, outputs| {
            candle_nn::linear(inputs, outputs, vb.pp(Head::canonical_key(j, count)))
        })?;
        let last = steps
            .iter()
            .rev()
            .find_map(|s| match s {
                Step::Linear(l) => Some(l.clone()),
                _ => None,
            })
            .ok_or_else(|| candle_core::Error::Msg("a head needs a linear layer".into()))?;
        Ok(Self { steps, last })
    }

    pub(crate) fn last_linear(&self) -> &Linear {
        &self.last
    }

    /// Pooled features `[batch, features]` to logits `[batch, classes]`.
    pub(crate) fn forward(&self, pooled: &Tensor) -> Result<Tensor> {
        let mut x = pooled.clone();
        for step in &self.steps {
            x = match step {
                Step::Linear(linear) => linear.forward(&x)?,
                Step::Relu => x.relu()?,
                Step::Identity => x,
            };
        }
        Ok(x)
    }
}

/// A linear layer as plain rows, for the inference engine.
#[derive(Debug, Clone)]
struct Rows {
    /// `[outputs, inputs]` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

/// The head on plain buffers, for the inference engine.
#[derive(Debug, Clone)]
pub(crate) struct HeadRows {
    steps: Vec<Step<Rows>>,
}

impl HeadRows {
    /// The head's layers, each read by `get` (a tensor's values by canonical name, as f32).
    pub(crate) fn new(head: &Head, get: impl Fn(&str) -> Result<Vec<f32>>) -> Result<Self> {
        let steps = Step::all(head, |j, count, inputs, outputs| {
            let key = Head::canonical_key(j, count);
            let weight = get(&format!("{key}.weight"))?;
            let bias = get(&format!("{key}.bias"))?;
            if weight.len() != inputs * outputs || bias.len() != outputs {
                candle_core::bail!("{key} does not have the shape [{outputs}, {inputs}]");
            }
            Ok(Rows {
                weight,
                bias,
                inputs,
            })
        })?;
        Ok(Self { steps })
    }

    /// Pooled features to logits: each product summed in f64, rounded to f32 after each
    /// layer as PyTorch's f32 layers are.
    pub(crate) fn forward(&self, pooled: Vec<f32>) -> Result<Vec<f32>> {
        let mut x = pooled;
        for step in &self.steps {
            x = step.forward(x)?;
        }
        Ok(x)
    }

    /// `d logit[class] / d pooled`: the forward pass kept step by step, then back through
    /// the linear layers (their weights transposed) and the ReLUs' masks.
    pub(crate) fn gradient(&self, pooled: &[f32], class: usize) -> Result<Vec<f32>> {
        let mut inputs = Vec::with_capacity(self.steps.len());
        let mut x = pooled.to_vec();
        for step in &self.steps {
            let next = step.forward(x.clone())?;
            inputs.push(std::mem::replace(&mut x, next));
        }
        if class >= x.len() {
            candle_core::bail!("the head has {} outputs, not a class {class}", x.len());
        }
        let mut g = vec![0f64; x.len()];
        g[class] = 1.0;
        for (step, input) in self.steps.iter().zip(&inputs).rev() {
            match step {
                Step::Linear(rows) => {
                    let mut back = vec![0f64; rows.inputs];
                    for (row, &gv) in rows.weight.chunks_exact(rows.inputs.max(1)).zip(&g) {
                        for (b, &w) in back.iter_mut().zip(row) {
                            *b += gv * f64::from(w);
                        }
                    }
                    g = back;
                }
                Step::Relu => {
                    for (gv, &v) in g.iter_mut().zip(input) {
                        if v <= 0.0 {
                            *gv = 0.0;
                        }
                    }
                }
                Step::Identity => {}
            }
        }
        Ok(g.into_iter().map(|v| v as f32).collect())
    }
}

impl Step<Rows> {
    fn forward(&self, mut x: Vec<f32>) -> Result<Vec<f32>> {
        match self {
            Step::Linear(rows) => {
                if x.len() != rows.inputs {
                    candle_core::bail!(
                        "a head layer takes {} features, it was given {}",
                        rows.inputs,
                        x.len()
                    );
                }
                Ok(rows
                    .weight
                    .chunks_exact(rows.inputs.max(1))
                    .zip(&rows.bias)
                    .map(|(row, &b)| {
                        let dot: f64 = row
                            .iter()
                            .zip(&x)
                            .map(|(&w, &p)| f64::from(w) * f64::from(p))
                            .sum();
                        (dot + f64::from(b)) as f32
                    })
                    .collect())
            }
            Step::Relu => {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
                Ok(x)
            }
            Step::Identity => Ok(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp() -> Head {
        Head {
            layers: vec![
                HeadLayer::Dropout,
                HeadLayer::Linear {
                    key: "classifier.1".into(),
                    inputs: 6,
                    outputs: 4,
                },
                HeadLayer::Relu,
                HeadLayer::Linear {
                    key: "fc".into(),
                    inputs: 4,
                    outputs: 2,
                },
            ],
        }
    }

    #[test]
    fn one_linear_layer_among_dropouts_is_one_linear_map() {
        assert!(Head::linear("classifier", 6, 3).is_one_linear_map());
        let mut head = Head::linear("classifier.1", 6, 3);
        head.layers.insert(0, HeadLayer::Dropout);
        assert!(head.is_one_linear_map());
        head.layers.push(HeadLayer::Relu);
        assert!(!head.is_one_linear_map(), "a ReLU on the logits");
        assert!(!mlp().is_one_linear_map());
        assert_eq!(mlp().num_classes(), 2);
        assert_eq!(
            mlp().to_string(),
            "dropout, linear classifier.1 [4, 6], relu, linear fc [2, 4]"
        );
        assert_eq!(
            mlp().expected_tensors(),
            [
                ("classifier.0.weight".to_string(), vec![4, 6]),
                ("classifier.0.bias".to_string(), vec![4]),
                ("classifier.1.weight".to_string(), vec![2, 4]),
                ("classifier.1.bias".to_string(), vec![2]),
            ]
        );
    }

    #[test]
    fn head_items_read_from_a_sidecar() {
        let items: Vec<HeadItem> =
            serde_json::from_str(r#"["linear", "ReLU", "dropout", "linear"]"#).unwrap();
        assert_eq!(
            items,
            [
                HeadItem::Linear,
                HeadItem::Relu,
                HeadItem::Dropout,
                HeadItem::Linear
            ]
        );
        let err = serde_json::from_str::<Vec<HeadItem>>(r#"["linear", "sigmoid"]"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'sigmoid' is the model's output activation"),
            "{err}"
        );
        let err = serde_json::from_str::<Vec<HeadItem>>(r#"["conv"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown head layer 'conv'"), "{err}");
    }

    #[test]
    fn the_engine_s_head_equals_candle_s() {
        use crate::network::test_support::{max_abs_diff, normal};
        use candle_core::{DType, Device};
        use std::collections::HashMap;
        let head = mlp();
        let mut map = HashMap::new();
        for (i, (key, shape)) in head.expected_tensors().into_iter().enumerate() {
            map.insert(key, normal(40 + i as u64, &shape, 1.0));
        }
        let pooled = normal(50, &[1, 6], 1.0);
        let rows = HeadRows::new(&head, |k| map[k].flatten_all()?.to_vec1()).unwrap();
        let fast = rows
            .forward(pooled.flatten_all().unwrap().to_vec1().unwrap())
            .unwrap();
        let vb = VarBuilder::from_tensors(map.clone(), DType::F32, &Device::Cpu);
        let net = HeadNet::new(&head, &vb).unwrap();
        let reference = net.forward(&pooled).unwrap();
        let fast = Tensor::from_vec(fast, (1, 2), &Device::Cpu).unwrap();
        let diff = max_abs_diff(&fast, &reference);
        assert!(diff < 1e-5, "{diff}");
        let err = rows.forward(vec![0.0; 5]).unwrap_err().to_string();
        assert!(err.contains("takes 6 features"), "{err}");
    }

    #[test]
    fn the_engine_s_head_gradient_equals_candle_s_autograd() {
        use crate::network::test_support::normal;
        use candle_core::{DType, Device, Var};
        use std::collections::HashMap;
        let head = mlp();
        let mut map = HashMap::new();
        for (i, (key, shape)) in head.expected_tensors().into_iter().enumerate() {
            map.insert(key, normal(60 + i as u64, &shape, 1.0));
        }
        let pooled = normal(70, &[1, 6], 1.0);
        let rows = HeadRows::new(&head, |k| map[k].flatten_all()?.to_vec1()).unwrap();
        let vb = VarBuilder::from_tensors(map.clone(), DType::F32, &Device::Cpu);
        let net = HeadNet::new(&head, &vb).unwrap();
        let values: Vec<f32> = pooled.flatten_all().unwrap().to_vec1().unwrap();
        for class in 0..2 {
            let var = Var::from_tensor(&pooled).unwrap();
            let logit = net.forward(var.as_tensor()).unwrap();
            let score = logit.narrow(1, class, 1).unwrap().sum_all().unwrap();
            let grads = score.backward().unwrap();
            let expected: Vec<f32> = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = rows.gradient(&values, class).unwrap();
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (g - e).abs() < 1e-5,
                    "class {class}: {got:?} vs {expected:?}"
                );
            }
        }
        assert!(rows.gradient(&values, 2).is_err());
    }
}
