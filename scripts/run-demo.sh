#!/usr/bin/env bash
# scripts/run-demo.sh — the main job on its embedded defaults: install, build, start
# `vrwkv serve` (coordinator, vision worker and 2 layer shards in one process, embedded state
# store) with the fixture model in ../shared/fixtures/tiny (random weights: the answer is
# gibberish by design), ask it a question about an image over gRPC with `vrwkv client`,
# continue the dialogue with a follow-up turn, then stop the server.
# Extra arguments go to both `vrwkv client` calls (e.g. --scan multi --json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
shared="${VRWKV_SHARED_DIR:-$(cd .. && pwd)/shared}"
fix="$shared/fixtures"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVRWKV_SHARED_DIR="$shared" >/dev/null
cmake --build build -j"$(nproc)" --target vrwkv >/dev/null
port="${VRWKV_PORT:-50051}"
key="demo-key-$$"
log="$(mktemp)"
build/vrwkv serve --model "$fix/tiny/model.pth" --config "$fix/tiny/model.json" \
  --vocab "$shared/rwkv_vocab_v20230424.txt" --port "$port" --shards 2 --api-key "$key" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
  build/vrwkv client --addr "127.0.0.1:$port" --health >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
out="$(build/vrwkv client --addr "127.0.0.1:$port" --api-key "$key" --new-session --json \
  --image "$fix/images/img0.jpg" --max-tokens 24 "$@" "What is in this image?")"
echo "$out"
session="$(printf '%s' "$out" | sed -n 's/.*"session": "\([^"]*\)".*/\1/p')"
build/vrwkv client --addr "127.0.0.1:$port" --api-key "$key" --session "$session" --max-tokens 24 "$@" \
  "What colour is it?"
