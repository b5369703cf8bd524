#!/usr/bin/env bash
# The test command (README names it; .ci/run calls exactly this): the system packages the tests need, when
# missing, then the whole suite. Run it in the venv that has the project with its test extra
# (pip install -e '.[test]'), with ../shared (the reference oracles) beside the checkout.
#
# System packages: Orthanc (the PACS tests' server, started by the tests inside a loopback-only network
# namespace), iproute2 and util-linux (ip, unshare: the namespace), strace (the Ray test watches every
# connection its local instance makes), fonts-droid-fallback and fonts-nanum (Chinese and Japanese; Korean:
# the PNG captions' test draws them, as a reading room's computer would). Installing needs root and apt-get; without
# them the script says what is missing and the suite runs, the PACS tests then fail saying the same.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
echo "CPU: $(grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
if ! command -v Orthanc >/dev/null || ! command -v ip >/dev/null || ! command -v unshare >/dev/null \
        || ! command -v strace >/dev/null || [ ! -e /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] \
        || [ ! -e /usr/share/fonts/truetype/nanum/NanumGothic.ttf ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        made_policy=""  # keeps the package from starting Orthanc as a service on every interface
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
        fi
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            orthanc orthanc-dicomweb orthanc-gdcm iproute2 util-linux strace fonts-droid-fallback fonts-nanum >/dev/null
        if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    else
        echo "note: the PACS tests need Orthanc, ip and unshare, the Ray test strace (Debian: orthanc" \
             "orthanc-dicomweb orthanc-gdcm iproute2 util-linux strace; the CJK caption test fonts-droid-fallback fonts-nanum) and root for the network namespace; run" \
             "this script as root to install them" >&2
    fi
fi
# MAMMO_REQUIRE_SHARED=1: a missing ../shared fails the run at once instead of skipping the oracle tests
export MAMMO_REQUIRE_SHARED="${MAMMO_REQUIRE_SHARED:-1}"
exec python -m pytest -q --durations=15 "$@"
