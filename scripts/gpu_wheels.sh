#!/usr/bin/env bash
# Wheels that an offline GPU machine with torch, transformers, accelerate and peft (but no ms-swift) needs for
# `codedance sft` and the GPU checks, downloaded here for its Python (default 3.12) into DIR (default .whl).
# On that machine: pip install --no-index --no-deps --target /tmp/site DIR/*.whl (gpu_pipeline_check.sh does it).
set -euo pipefail
DIR=${1:-.whl}
PYV=${PYV:-3.12}
WHEELS=(ms-swift==4.6.0 modelscope==1.40.2 modelscope-hub==0.5.1 datasets==4.8.4 dill==0.4.1 multiprocess==0.70.19
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 trl==0.29.1
        json_repair==0.64.6 zstandard==0.25.0 addict==2.4.0 attrdict==2.0.1 binpacking==2.0.1 dacite==1.9.2
        qwen-vl-utils==0.0.14 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 pyseccomp==0.1.2
        msgspec==0.23.0  # msgspec: ms-swift GRPO
        liger-kernel==0.8.5  # --use_liger_kernel rows of benchmarks/sft_throughput.py (pure Python, ~0.9 MB; needs triton, which CUDA torch brings)
        hjson==3.1.0 py-cpuinfo==9.0.0 msgpack==1.1.2 ninja==1.13.0 einops==0.8.1)  # deepspeed's needs (ZeRO in gpu_node_check.sh)
DEEPSPEED=deepspeed==0.19.8  # PyPI has only its source: built below into a pure-Python wheel, ops left to JIT (ZeRO needs none)
mkdir -p "$DIR"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$DIR" "${WHEELS[@]}"
if ! compgen -G "$DIR/deepspeed-*.whl" >/dev/null; then
  src=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary :all: -d "$src" "$DEEPSPEED"
  # its setup.py imports torch: build with the project's environment, which has the CPU build
  DS_BUILD_OPS=0 "${BUILD_PYTHON:-.venv/bin/python}" -m pip wheel -q --no-deps --no-build-isolation -w "$DIR" "$src"/deepspeed-*.tar.gz
  rm -rf "$src"
fi
du -sh "$DIR"
