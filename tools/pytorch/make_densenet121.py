"""Writes a torchvision DenseNet-121 state dict with random weights and random batch-norm
statistics (so folding is exercised), as .pth, or .safetensors by the file's extension.

python make_densenet121.py OUT [CLASSES]
"""
import sys

import torch
import torchvision

out = sys.argv[1]
classes = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
torch.manual_seed(0)
model = torchvision.models.densenet121(num_classes=classes)
with torch.no_grad():
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.1, 0.1)
state = model.state_dict()
if out.endswith(".safetensors"):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, out)
else:
    torch.save(state, out)
