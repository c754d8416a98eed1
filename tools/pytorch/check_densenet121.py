"""Writes an input and torchvision's logits for it, to check camview on a full-size network
(not part of CI): python check_densenet121.py CHECKPOINT X.npy LOGITS.npy [SIZE]

then: cargo run --release --example time_forward -- CHECKPOINT --input X.npy --expect LOGITS.npy
"""
import sys

import numpy as np
import torch
import torchvision

path, x_out, logits_out = sys.argv[1:4]
size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
state = torch.load(path, map_location="cpu", weights_only=True)
model = torchvision.models.densenet121(num_classes=state["classifier.weight"].shape[0])
model.load_state_dict(state)
model.eval()
torch.manual_seed(1)
x = torch.randn(1, 3, size, size)
with torch.no_grad():
    logits = model(x)
np.save(x_out, x.numpy())
np.save(logits_out, logits.numpy())
