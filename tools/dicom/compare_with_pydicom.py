"""camview's 8-bit image of every DICOM file in a folder against pydicom's, by the pipeline
README "DICOM" documents (tests/fixtures/dicom_reference.py). For files camview did not make:
pydicom's own test files are the default folder.

usage: /work/venv/bin/python tools/dicom/compare_with_pydicom.py [FOLDER] [CAMVIEW]

Runs `camview render --opacity 0` (the image as displayed through the file's window) on each
file, then prints per file: photometric interpretation, transfer syntax, the largest difference
from pydicom in grey levels and the share of differing values; or camview's message when it
refuses the file, and pydicom's when pydicom cannot decode it.
"""

import pathlib
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_color_lut

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/fixtures"))
from dicom_reference import mono_reference  # noqa: E402

warnings.filterwarnings("ignore")
folder = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else (
    pathlib.Path(pydicom.__file__).parent / "data/test_files")
camview = sys.argv[2] if len(sys.argv) > 2 else str(ROOT / "target/debug/camview")


def reference(ds):
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    pi = ds.PhotometricInterpretation
    if pi in ("MONOCHROME1", "MONOCHROME2"):
        return np.stack([mono_reference(ds, arr)["eight"]] * 3, -1).astype(int)
    if pi == "PALETTE COLOR":
        bits = ds.RedPaletteColorLookupTableDescriptor[2]
        return np.floor(apply_color_lut(arr, ds) * 255.0 / (2**bits - 1) + 0.5).astype(int)
    ref = arr.astype(int)
    return ref >> (ds.BitsStored - 8) if ds.BitsAllocated > 8 else ref


with tempfile.TemporaryDirectory() as out:
    for path in sorted(folder.glob("*.dcm")):
        png = pathlib.Path(out) / (path.stem + ".png")
        run = subprocess.run([camview, "render", "--opacity", "0", "--out", str(png), str(path)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            message = run.stderr.strip().splitlines()[-1].replace(str(path), path.name)
            print(f"{path.stem:40s} refused: {message[:150]}")
            continue
        ds = pydicom.dcmread(path)
        try:
            ref = reference(ds)
        except Exception as e:  # pydicom's own failure, reported as such
            print(f"{path.stem:40s} pydicom cannot decode it: {e}")
            continue
        ours = np.asarray(Image.open(png).convert("RGB")).astype(int)
        if ours.shape != ref.shape:
            print(f"{path.stem:40s} shape {ours.shape} vs pydicom's {ref.shape}")
            continue
        d = np.abs(ref - ours)
        ts = ds.file_meta.TransferSyntaxUID.name[:30]
        print(f"{path.stem:40s} {ds.PhotometricInterpretation:14s} {ts:30s} "
              f"max {d.max():3d}  differing {(d > 0).mean() * 100:6.2f}%")
