#!/usr/bin/env bash
# Packs the Python packages scripts/bench_e2e.sh needs on the device machine (it has torch, triton, numpy,
# safetensors, tokenizers, huggingface-hub, peft, httpx, anyio, filelock, opencv-python-headless, ...: KINDS.md)
# into .whl/site.tar.xz: the wheels, unpacked and xz-compressed (62 MB of wheels -> ~36 MB, under the 64 MiB
# the working tree may carry), and OpenCV 4 into .whl-cv/opencv.tar.xz (~41 MB: the device's OpenCV 5 fails VBVR's
# check, and both packs together exceed one call's carry, so a first call carries .whl and a second .whl-cv;
# scripts/bench_e2e.sh unpacks each into build/site, which a warm machine keeps). Run here, in the repo root
# (needs PyPI):  scripts/pack_e2e_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for d in /.whl/ /.whl-cv/; do
  grep -qx "$d" "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null || echo "$d" >> "$(git rev-parse --git-common-dir)/info/exclude"
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$tmp/whl" \
  diffusers==0.42.1 transformers==5.23.0 hydra-core==1.3.2 omegaconf==2.3.1 ftfy==6.3.1 wcwidth==0.9.5 \
  openai==3.63.0 jiter==0.19.0 distro==1.9.0 sniffio==1.3.1 pydantic==2.14.4 pydantic-core==2.50.5 \
  typing-inspection==0.4.5 annotated-types==0.8.0 av==18.1.0 httpx2==2.17.0 httpcore2==2.17.0 truststore==0.10.5
# antlr4-python3-runtime 4.9.3 (omegaconf's grammar runtime) ships only an sdist: build its wheel here.
python3 -m pip wheel -q --no-deps -w "$tmp/whl" antlr4-python3-runtime==4.9.3
VBVR=${VBVR_WHEEL:-../shared/wheels/vbvr_bench-0.1.0-py3-none-any.whl}
[ -f "$VBVR" ] || VBVR=/work/shared/wheels/vbvr_bench-0.1.0-py3-none-any.whl
cp "$VBVR" "$tmp/whl/"
for w in "$tmp"/whl/*.whl; do python3 -m zipfile -e "$w" "$tmp/site"; done
mkdir -p .whl && rm -f .whl/*.whl .whl/site.tar.xz
tar -C "$tmp" -cf - site | xz -T0 -6 > .whl/site.tar.xz
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d "$tmp/cv" 'opencv-python-headless<5'
python3 -m zipfile -e "$tmp"/cv/*.whl "$tmp/cvsite/site"
mkdir -p .whl-cv && tar -C "$tmp/cvsite" -cf - site | xz -T0 -6 > .whl-cv/opencv.tar.xz
ls -la .whl/site.tar.xz .whl-cv/opencv.tar.xz
