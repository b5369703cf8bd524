#!/usr/bin/env bash
# What bench/gpu_check.py needs on the GPU machine, made here (that machine reaches no package registry and has
# no ../shared): the wheels it lacks in .whl/ (pydicom and the RLE decoder, for the batch part's synthetic DICOM
# exams), and the GMIC oracle (seeded weights as lossless byte planes, one view's goldens) in .gpu_shared/.
# Both folders are ignored through .git/info/exclude. Then, with carry [".whl", ".gpu_shared"], the one line in
# bench/gpu_check.py's docstring.
set -euo pipefail
cd "$(dirname "$0")/.."
for ignored in /.whl/ /.gpu_shared/; do
    grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >> .git/info/exclude
done
PYTHON=${PYTHON:-.venv/bin/python}
rm -rf .whl && mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    pydicom==3.0.2 pylibjpeg==2.1.0 pylibjpeg-rle==2.2.0
rm -rf .gpu_shared
"$PYTHON" bench/gpu_check.py --prepare .gpu_shared --shared "${MAMMO_SHARED:-../shared}" \
    --prepare-families "${GPU_CHECK_FAMILIES:-gmic}" --prepare-views "${GPU_CHECK_VIEWS:-L-CC}"
du -sh .whl .gpu_shared
# what a device call carries: tracked and untracked-not-ignored files, plus the two carried folders (64 MiB at most)
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(du -sb .whl .gpu_shared | awk '{s += $1} END {print s}')
echo "working tree $((tree / 1048576)) MiB + carried $((carried / 1048576)) MiB = $(((tree + carried) / 1048576)) MiB (limit 64)"
