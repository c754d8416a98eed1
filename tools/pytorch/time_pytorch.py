"""Times torchvision's DenseNet forward (used by compare_pytorch.sh; not part of CI).

python time_pytorch.py CHECKPOINT SIZE REPEATS eager|channels_last
prints one `forward_ms` line per timed forward, then `median_ms`. THREADS sets torch's threads.
"""
import os
import statistics
import sys
import time

import torch
import torchvision

path, size, repeats, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if os.environ.get("THREADS"):
    torch.set_num_threads(int(os.environ["THREADS"]))
if path.endswith(".safetensors"):
    from safetensors.torch import load_file

    state = load_file(path)
else:
    state = torch.load(path, map_location="cpu", weights_only=True)
classes = state["classifier.weight"].shape[0]
model = torchvision.models.densenet121(num_classes=classes)
model.load_state_dict(state)
model.eval()
x = torch.randn(1, 3, size, size)
if mode == "channels_last":
    model = model.to(memory_format=torch.channels_last)
    x = x.to(memory_format=torch.channels_last)
times = []
with torch.inference_mode():
    for i in range(3 + repeats):
        start = time.perf_counter()
        model(x)
        ms = (time.perf_counter() - start) * 1e3
        if i >= 3:
            times.append(ms)
            print(f"forward_ms {ms:.2f}")
print(f"median_ms {statistics.median(times):.2f}")
