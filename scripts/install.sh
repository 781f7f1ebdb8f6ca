#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian/Ubuntu machine (idempotent; safe to rerun).
#   - Mesa's headless GL (EGL + OSMesa on the CPU, no display needed)
#   - torch: kept if already importable (a GPU build, say), else the CPU wheel torch==2.13.0
#   - this package in editable mode, with the test and physics extras (panda3d's Bullet: MMD rigid bodies,
#     on by default in render and synth; 134 MB installed, no dependencies, next to torch's 750 MB)
#     (not Ray: for --distributor ray, add it with pip install -e '.[ray]')
set -euo pipefail
cd "$(dirname "$0")/.."

gl_pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6)
missing=()
for p in "${gl_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install -q torch==2.13.0
fi
"$py" -m pip install -q -e ".[test,physics]"
