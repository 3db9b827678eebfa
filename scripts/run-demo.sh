#!/usr/bin/env bash
# scripts/run-demo.sh — the main job on its embedded defaults: install, build, then answer a
# question about an image with the fixture model (../shared/fixtures/tiny, random weights, so
# the answer is gibberish by design; point --model/--config at a real VisualRWKV checkpoint for
# a real answer). Extra arguments go to `vrwkv run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
shared="${VRWKV_SHARED_DIR:-$(cd .. && pwd)/shared}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVRWKV_SHARED_DIR="$shared" >/dev/null
cmake --build build -j"$(nproc)" --target vrwkv >/dev/null
exec build/vrwkv run \
  --model "$shared/fixtures/tiny/model.pth" --config "$shared/fixtures/tiny/model.json" \
  --vocab "$shared/rwkv_vocab_v20230424.txt" \
  --image "$shared/fixtures/images/img0.jpg" \
  --prompt "What is in this image?" --max-tokens 24 "$@"
