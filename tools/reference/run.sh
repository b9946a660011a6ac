#!/usr/bin/env bash
# Regenerate tests/fixtures/reference/ from scratch: bash tools/reference/run.sh
#
# Creates its own venv (tools/reference/.venv, git-ignored) with pinned PyPI packages, then runs
# make.py. Needs: python3.11+ with venv, a C compiler (cc) and binutils (readelf), network access
# to PyPI. CPU only; about a minute on 2 cores after the downloads.
#
# torch: PyPI's only Linux x86_64 torch 2.15.0 wheel is the CUDA build, whose dependencies are
# ~1.8 GB of NVIDIA wheels that a CPU run never calls. We install torch==2.15.0 with --no-deps,
# add its pure-python dependencies, and let torch_cpu_stubs.py build tiny stand-ins for the NVIDIA
# shared libraries torch links against (every stub call returns "no device"), put on
# LD_LIBRARY_PATH for this run only. torch's own files are untouched. `import torch`, CPU matmuls
# and `torch.cuda.is_available() == False` are checked before generation starts. Set
# REF_TORCH_WITH_CUDA_DEPS=1 to install torch with its real NVIDIA dependencies instead.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${REF_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
"$vpy" -m pip install --quiet --upgrade pip
if [ "${REF_TORCH_WITH_CUDA_DEPS:-0}" = "1" ]; then
  "$vpy" -m pip install --quiet torch==2.15.0
else
  "$vpy" -m pip install --quiet --no-deps torch==2.15.0
fi
"$vpy" -m pip install --quiet -r "$here/requirements.txt" -c "$here/requirements.lock.txt"
"$vpy" -m pip install --quiet -r "$here/requirements.lock.txt"

stubs="$venv/torch-cpu-stubs"
if [ "${REF_TORCH_WITH_CUDA_DEPS:-0}" != "1" ]; then
  rm -rf "$stubs"
  "$vpy" "$here/torch_cpu_stubs.py" "$stubs"
  export LD_LIBRARY_PATH="$stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
"$vpy" - <<'PY'
import torch
a = torch.arange(16.0).reshape(4, 4)
assert torch.equal(a @ torch.eye(4), a) and float((a @ a).sum()) == 3920.0
assert not torch.cuda.is_available()
print("torch", torch.__version__, "CPU ok")
PY

cd "$here"
"$vpy" make.py --out "$repo/tests/fixtures/reference" --cache "$repo/.cache/reference" "$@"
"$vpy" greedy.py --fixtures "$repo/tests/fixtures/reference"
