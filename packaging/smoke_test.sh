#!/usr/bin/env bash
# Run the built executable offscreen on the built-in demo with --screenshot and check the picture.
set -euo pipefail
cd "$(dirname "$0")/.."
# a settings folder of its own (the demo exam, the store, the site key), removed at the end whatever happens: the
# user's MAMMO_READER_HOME is not the smoke test's to write in
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
out="$home/smoke.png"
QT_QPA_PLATFORM=offscreen MAMMO_READER_HOME="$home" timeout 600 dist/MammoReader/MammoReader --screenshot "$out"
python - "$out" <<'PY'
import sys
import cv2
image = cv2.imread(sys.argv[1])
assert image is not None and image.shape[0] >= 800 and image.shape[1] >= 1200, "no usable screenshot"
assert image.std() > 10, "the screenshot is blank"
print(f"smoke test passed: {sys.argv[1]} {image.shape[1]}x{image.shape[0]}")
PY
# Help → User guide reads its pages from the bundle
find dist/MammoReader -path '*/docs/workstation.md' | grep -q . || { echo "the user guide's pages are not bundled"; exit 1; }
# every report format from the bundle (the DICOM writers read data files that must be bundled too)
reports="$home/reports"
QT_QPA_PLATFORM=offscreen MAMMO_READER_HOME="$home" timeout 600 dist/MammoReader/MammoReader report \
    "$home/demo_exam_v2" --format pdf,png,json,sr,seg --deidentify --out "$reports"
python - "$reports" <<'PY'
import sys
from pathlib import Path
files = sorted(p.name for p in Path(sys.argv[1]).iterdir() if p.is_file())
assert any(n.endswith(".pdf") for n in files) and any(n.endswith("_sr.dcm") for n in files), files
assert sum(n.endswith("_saliency_seg.dcm") for n in files) == 4, files
print(f"smoke test passed: {len(files)} report files")
PY
