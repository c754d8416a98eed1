//! The model randomisation test of Adebayo et al., "Sanity Checks for Saliency Maps"
//! (NeurIPS 2018): a map that explains *this* model must change when the model's learned
//! weights are replaced by random ones. The classifier is randomised module by module from the
//! top (cascading: the head, then norm5, the last dense block, ... down to the stem, each step
//! keeping the ones before it random) or one module at a time (independent), as torchvision
//! initialises them (`network::randomise`); at each step the chosen method's map of the chosen
//! class is computed through the one analysis path (`explain_image`) and compared with the
//! original map (`similarity`): Spearman's rank correlation of the maps upsampled to the
//! network's input and of their absolute values, SSIM and HOG similarity of those maps scaled to
//! [0, 1]. Scores near 1 after the top modules are random mean the map is not explaining what
//! the model learned.

use serde::{Deserialize, Serialize};

use super::agreement::unit_scaled;
use super::analysis::{AnalysisError, explain_image};
use super::methods::{Classes, ExplainError, Progress};
use super::similarity::{hog_similarity, spearman, ssim};
use super::{ClassActivationMap, MapChoice};
use crate::imaging::SourceImage;
use crate::network::Classifier;
use crate::network::randomise::Module;

/// Which modules each step randomises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Randomisation {
    /// Step k: the first k modules from the top.
    Cascading,
    /// Step k: the k-th module from the top alone.
    Independent,
}

/// How alike a randomised model's map is to the original's (NaN when undefined: a constant
/// map has no ranks, an image under 7 x 7 no SSIM window, under 24 x 24 no HOG block).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    pub spearman: f64,
    pub spearman_abs: f64,
    pub ssim: f64,
    pub hog: f64,
}

impl Similarity {
    /// `a` and `b` are maps on the same `w x h` grid.
    pub fn of(a: &[f32], b: &[f32], w: usize, h: usize) -> Self {
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
        let (ua, ub) = (unit_scaled(a), unit_scaled(b));
        Self {
            spearman: spearman(a, b),
            spearman_abs: spearman(&abs(a), &abs(b)),
            ssim: ssim(&ua, &ub, w, h),
            hog: hog_similarity(&ua, &ub, w, h),
        }
    }
}

/// One step of the test.
#[derive(Debug, Clone)]
pub struct SanityStep {
    /// The modules random in this step, by their names in the checkpoint.
    pub randomised: Vec<String>,
    pub map: ClassActivationMap,
    pub similarity: Similarity,
}

/// The whole test of one image.
#[derive(Debug, Clone)]
pub struct SanityReport {
    pub class: usize,
    pub choice: MapChoice,
    pub mode: Randomisation,
    pub seed: u64,
    /// The trained model's map.
    pub original: ClassActivationMap,
    pub steps: Vec<SanityStep>,
}

/// Why the test could not run.
#[derive(Debug, thiserror::Error)]
pub enum SanityError {
    #[error(transparent)]
    Analysis(Box<AnalysisError>),
    #[error("{0}: cannot randomise the model: {1}")]
    Randomise(String, candle_core::Error),
    #[error("{0}: the map of class {1} was not computed")]
    NoMap(String, usize),
    #[error("stopped")]
    Cancelled,
}

/// The randomisation test of `class`'s map by `choice` on `image` (see the module's
/// documentation). `progress` counts the randomised models (one unit each) and can stop the
/// test between them.
pub fn sanity_check(
    classifier: &Classifier,
    image: &SourceImage,
    choice: &MapChoice,
    class: usize,
    mode: Randomisation,
    seed: u64,
    progress: &dyn Progress,
) -> Result<SanityReport, SanityError> {
    let modules = classifier.modules();
    let total = modules.len();
    // a model's map, and the network input's (width, height)
    let map_of = |model: &Classifier| -> Result<(ClassActivationMap, (usize, usize)), SanityError> {
        let classes = Classes::Only(vec![class]);
        let analysis = explain_image(model, image, choice, &classes, &Stoppable(progress))
            .map_err(|e| match e {
                AnalysisError::Map {
                    reason: ExplainError::Cancelled,
                    ..
                } => SanityError::Cancelled,
                other => SanityError::Analysis(Box::new(other)),
            })?;
        let (w, h) = analysis.input_size;
        let map = analysis
            .map(class)
            .ok_or_else(|| SanityError::NoMap(image.name.clone(), class))?;
        Ok((map.clone(), (w as usize, h as usize)))
    };
    let (original, (w, h)) = map_of(classifier)?;
    let grid = |m: &ClassActivationMap| m.on_input_grid(w, h);
    let original_grid = grid(&original);
    let mut steps = Vec::with_capacity(total);
    for k in 0..total {
        if progress.cancelled() {
            return Err(SanityError::Cancelled);
        }
        progress.report(k, total);
        let which: Vec<Module> = match mode {
            Randomisation::Cascading => modules[..=k].to_vec(),
            Randomisation::Independent => vec![modules[k].clone()],
        };
        let model = classifier
            .randomised(&which, seed)
            .map_err(|e| SanityError::Randomise(classifier.info.file.clone(), e))?;
        let (map, _) = map_of(&model)?;
        let similarity = Similarity::of(&original_grid, &grid(&map), w, h);
        steps.push(SanityStep {
            randomised: which.iter().map(Module::name).collect(),
            map,
            similarity,
        });
    }
    progress.report(total, total);
    Ok(SanityReport {
        class,
        choice: *choice,
        mode,
        seed,
        original,
        steps,
    })
}

/// Passes a map's stop request on, not its progress (the test counts models, not batches).
struct Stoppable<'a>(&'a dyn Progress);

impl Progress for Stoppable<'_> {
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}
