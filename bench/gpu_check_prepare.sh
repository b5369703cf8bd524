#!/usr/bin/env bash
# What bench/gpu_check.py needs on the GPU machine, made here (that machine reaches no package registry and has
# no ../shared): the wheels it lacks in .whl/ (pydicom and the RLE decoder, for the batch part's synthetic DICOM
# exams), and ONE family's oracle in .gpu_shared/ (its seeded weights as lossless byte planes and its goldens):
#   --set gmic      GMIC, view L-CC (~47 MiB: the default)
#   --set glam      GLAM, view L-CC with GMIC's golden for its input (~43 MiB)
#   --set maskrcnn  Mask R-CNN, all four exam-0 views with their PNGs (~20 MiB)
# Every family's together is over the 64 MiB a device call carries (working tree + .whl + .gpu_shared); the
# script prints the total. GPU_CHECK_VIEWS=L-CC,R-MLO overrides the views. Both folders are ignored through
# .git/info/exclude.
#
# A session runs the oracles in two calls (carry [".whl", ".gpu_shared"] each time; the pip line first, as in
# bench/gpu_check.py's docstring):
#   1. bash bench/gpu_check_prepare.sh --set gmic, then on the device the whole check:
#        ... python3 bench/gpu_check.py --shared .gpu_shared --out $OUT
#   2. bash bench/gpu_check_prepare.sh --set glam (or --set maskrcnn), then on the device that family alone:
#        ... python3 bench/gpu_check.py --shared .gpu_shared --out $OUT --parts oracles,families,training --families glam
set -euo pipefail
cd "$(dirname "$0")/.."
SET=gmic
while [[ $# -gt 0 ]]; do
    case "$1" in
        --set) SET=${2:-}; shift 2 ;;
        --set=*) SET=${1#--set=}; shift ;;
        *) echo "usage: $0 [--set gmic|glam|maskrcnn]" >&2; exit 2 ;;
    esac
done
case "$SET" in
    gmic | glam) VIEWS=${GPU_CHECK_VIEWS:-L-CC} ;;
    maskrcnn) VIEWS=${GPU_CHECK_VIEWS:-L-CC,R-CC,L-MLO,R-MLO} ;;
    *) echo "--set must be gmic, glam or maskrcnn, not '$SET'" >&2; exit 2 ;;
esac
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
    --prepare-families "$SET" --prepare-views "$VIEWS"
du -sh .whl .gpu_shared
# what a device call carries: tracked and untracked-not-ignored files, plus the two carried folders (64 MiB at most)
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(du -sb .whl .gpu_shared | awk '{s += $1} END {print s}')
total=$(((tree + carried) / 1048576))
echo "working tree $((tree / 1048576)) MiB + carried $((carried / 1048576)) MiB = $total MiB (limit 64)"
if [[ $total -ge 64 ]]; then
    echo "over the 64 MiB a device call carries: fewer views (GPU_CHECK_VIEWS)" >&2
    exit 1
fi
