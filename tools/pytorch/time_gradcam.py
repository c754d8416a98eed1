"""Times pytorch-grad-cam's maps of a torchvision DenseNet, one method and layer at a time
(used by compare_methods.sh; not part of CI). Needs `pip install grad-cam==1.5.7`.

python time_gradcam.py CHECKPOINT INPUT.npy REPEATS [--methods M,..] [--layers L,..]
                       [--scorecam L,..] [--scorecam-repeats N] [--class C]

INPUT.npy is the network's input, [1, 3, H, W] float32 (check_densenet121.py writes one);
examples/time_methods.rs reads the same file. For every method and layer, one warm-up call,
then REPEATS timed calls of `cam(input_tensor=x, targets=[ClassifierOutputTarget(C)])`: what
a user of pytorch-grad-cam runs per image and class (forward pass with autograd, backward
pass for the gradient methods, the map, its ReLU, min-max scaling and cv2 resize to H x W).
Each timed call prints one line `map_ms METHOD LAYER MS` (camview's method and layer names).

Score-CAM runs a forward pass per channel of the layer (1024 at norm5, ~1.5 min here): it is
timed only at the layers given by --scorecam, --scorecam-repeats times (default 1) and without
a warm-up call of its own (the network is warm from the other methods, or from the two plain
forwards every run starts with).

The layers are camview's stages (src/network/config.rs) and hook the modules that
tests/fixtures/make_gradcam_fixtures.py uses for the parity fixtures:
- denseblockN, transitionN: `model.features.denseblockN` / `.transitionN` (their outputs are
  camview's stages: a block's concatenated maps, a transition after its pooling);
- norm5: relu(features.norm5), which torchvision applies in `DenseNet.forward` in place and
  outside `features`, so hooking `features.norm5` would see the pre-ReLU map. The model is
  wrapped in `PostReluDenseNet` (same weights, same logits) whose ReLU is a module to hook.
THREADS sets torch's threads.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Score-CAM draws a tqdm progress bar per batch; keep the output to the timings.
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402
from pytorch_grad_cam import (EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM,  # noqa: E402
                              LayerCAM, ScoreCAM, XGradCAM)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

# The hooked model is the parity fixtures' own (norm5's ReLU as a module, not in place).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fixtures"))
from make_gradcam_fixtures import PostReluDenseNet  # noqa: E402

# camview's method names (src/explain/method.rs) -> pytorch-grad-cam's classes.
METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
}
DEFAULT_METHODS = "gradcam,gradcam++,xgradcam,hirescam,layercam,eigencam"
DEFAULT_LAYERS = ("denseblock1,transition1,denseblock2,transition2,"
                  "denseblock3,transition3,denseblock4,norm5")


def layer_module(model: PostReluDenseNet, layer: str) -> nn.Module:
    """The module whose output is camview's stage `layer` (`features.` prefix optional)."""
    name = layer.removeprefix("features.")
    if name == "norm5":
        return model.relu5
    if name.startswith(("denseblock", "transition")):
        return getattr(model.features, name)
    raise SystemExit(f"unknown layer {layer!r}: use denseblockN, transitionN or norm5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("input", help="the network's input, [1, 3, H, W] float32 .npy")
    parser.add_argument("repeats", type=int)
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--layers", default=DEFAULT_LAYERS)
    parser.add_argument("--scorecam", default="", help="layers to time Score-CAM at")
    parser.add_argument("--scorecam-repeats", type=int, default=1)
    parser.add_argument("--class", dest="target_class", type=int, default=0)
    args = parser.parse_args()

    if os.environ.get("THREADS"):
        torch.set_num_threads(int(os.environ["THREADS"]))
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    net = torchvision.models.densenet121(num_classes=state["classifier.weight"].shape[0])
    net.load_state_dict(state)
    # As a user's model: eval mode, parameters requiring gradients (so the backward pass
    # also computes every weight's gradient below the loss, as pytorch-grad-cam always does).
    model = PostReluDenseNet(net.eval()).eval()
    x = torch.from_numpy(np.load(args.input))
    with torch.no_grad():
        for _ in range(2):  # warm the allocator and the kernels
            model(x)

    targets = [ClassifierOutputTarget(args.target_class)]
    runs = [(m, layer, args.repeats, 1)
            for m in filter(None, args.methods.split(",")) if m != "scorecam"
            for layer in filter(None, args.layers.split(","))]
    runs += [("scorecam", layer, args.scorecam_repeats, 0)
             for layer in filter(None, args.scorecam.split(","))]
    for method, layer, repeats, warmups in runs:
        if method not in METHODS:
            raise SystemExit(f"unknown method {method!r}: one of {', '.join(METHODS)}")
        layer = layer.removeprefix("features.")
        cam = METHODS[method](model=model, target_layers=[layer_module(model, layer)])
        times = []
        for i in range(warmups + repeats):
            start = time.perf_counter()
            cam(input_tensor=x, targets=targets)
            ms = (time.perf_counter() - start) * 1e3
            if i >= warmups:
                times.append(ms)
                print(f"map_ms {method} {layer} {ms:.2f}", flush=True)
        # Remove this CAM's hooks, or every later forward pass would still feed them.
        cam.activations_and_grads.release()
        print(f"median_ms {method} {layer} {statistics.median(times):.2f}", flush=True)


if __name__ == "__main__":
    main()
