#!/usr/bin/env bash
# The commands whose outputs the aarch64 check compares (tools/check_aarch64.sh runs them on x86_64 and on arm64):
# every shipped model, FP32 and INT8, on both backends, on the shared photos; and the shared video.
#   tools/aarch64_runs.sh OUT_DIR FACEPARSE_EDGE_EXECUTABLE MEDIA_DIR
set -euo pipefail
out=$1 fe=$2 media=$3
mkdir -p "$out"
for model in edge edge-hq; do
  for backend in onnxruntime openvino; do
    for m in "$model" "$model-int8"; do
      "$fe" image "$media" -m "$m" --backend "$backend" --out "$out/$m-$backend" --json "$out/$m-$backend.json"
    done
  done
done
"$fe" video "$media/short_hamilton_clip.mp4" --no-show --out "$out/video.mp4" --json "$out/video.json"
