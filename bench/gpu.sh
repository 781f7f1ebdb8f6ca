#!/usr/bin/env bash
# The GPU figures in one unattended command (< 8 minutes): see bench/gpu.py for what it measures.
#   bash bench/gpu.sh [--batch 8] [--steps 200]       -> bench/results/gpu.json
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/gpu.py "$@"
