#!/usr/bin/env bash
# One command: build the one-folder desktop app into dist/MammoReader and smoke-test it.
# Run from the repository root inside the project's venv (pip install -e '.[package]').
set -euo pipefail
export QT_QPA_PLATFORM=offscreen
cd "$(dirname "$0")/.."
start=$(date +%s)
python packaging/collect_licenses.py build/licenses
pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/mammo_reader.spec
echo "build took $(( $(date +%s) - start )) s; size: $(du -sh dist/MammoReader | cut -f1)"
bash packaging/smoke_test.sh
