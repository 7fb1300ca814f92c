#!/usr/bin/env bash
# Installs the Debian packages larmor needs to build and test, only those missing. Idempotent; runs as
# root without sudo (or with sudo when not root). Prints what it installs.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libeigen3-dev        # CPU math (kernels/cpu)
  doctest-dev          # tests
  libbenchmark-dev     # bench/
  nlohmann-json3-dev   # safetensors headers, configs
  libcli11-dev         # the larmor CLI
  libfmt-dev
  zlib1g-dev liblzma-dev  # gzip / xz input
  libopenbabel-dev openbabel  # chemistry input (chem/ob_*.cpp): SMILES/SDF, 3D conformers, MMFF94
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all build packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
