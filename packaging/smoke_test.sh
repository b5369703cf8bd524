#!/usr/bin/env bash
# Run the built executable offscreen on the built-in demo with --screenshot and check the picture.
set -euo pipefail
cd "$(dirname "$0")/.."
home=$(mktemp -d)
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
