#!/usr/bin/env bash
# Install everything kgen and its test suite need on a fresh Debian 12 machine: the C toolchains
# and simulators (apt), and kgen itself with its Python dependencies (pip, editable).
# Idempotent; skips apt when every tool is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc g++ clang-19 llvm-19 lld-19 libclang-rt-19-dev gcc-arm-none-eabi libnewlib-arm-none-eabi
              qemu-system-arm qemu-user device-tree-compiler)
need_apt=0
for tool in gcc g++ clang-19 llvm-objdump-19 ld.lld-19 arm-none-eabi-gcc qemu-system-arm dtc; do
  command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
# clang-19's sanitizer runtimes (ASan/UBSan host runs) come in a package of their own
[ -d /usr/lib/llvm-19/lib/clang/19/lib/linux ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
$PY -m pip install -q --disable-pip-version-check -e ".[sim,test,plots]"
echo "kgen setup complete: $($PY -m kgen --version)"
