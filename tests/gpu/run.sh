#!/usr/bin/env bash
# tests/gpu/run.sh [OUTDIR] — the GPU verification in one script: builds with
# -DVRWKV_CUDA=ON -DVRWKV_SERVICE=OFF, runs the CUDA-vs-CPU op tests, the fixture cases on the
# cuda backend, the NCCL tests, then `vrwkv bench --backend cuda` (SHAPE:DTYPE list from
# VRWKV_GPU_BENCH_SHAPES, default "1b6:f16 1b6:f16:f32 1b6:f16:profile 7b:f16 1b6:f16:unfused
# 1b6:bf16 3b:f16", the most telling first; a third field "split" or "f32" sets VRWKV_CUDA_GEMM, "unfused"
# VRWKV_CUDA_FUSE=0, "profile" VRWKV_CUDA_PROFILE=1 with graphs off: per-op device times of
# each phase, in bench.log), and writes its logs and a summary into OUTDIR (8 files, what a device
# call brings back: run.log build.log ops.log model.log (fixture cases and the in-process eval)
# nccl.log service.log bench.log summary.txt). The service
# check runs `vrwkv serve --backend cuda` from a bundle stage-fixtures.sh built (the GPU machine
# has no gRPC): tests/gpu/service_cases.py.
# Time: everything ends within VRWKV_GPU_DEADLINE_S (default 420) seconds of the start: what
# no longer fits is reported NOT RUN and the summary still gets its result line. Call it as
# `tests/gpu/run.sh $OUT` with the device call's timeout a minute above the deadline.
# Fixtures come from .gpu-fixtures/ in this checkout (tests/gpu/stage-fixtures.sh fills it),
# because the GPU machine receives the checkout but not ../shared.
# Dependencies the build needs there: cmake, gcc, nvcc (CUDA 12+), pkg-config, libjpeg, libpng,
# zlib, OpenBLAS (library only), cJSON (from the system or .gpu-fixtures/deps); cmocka only for
# the cpu unit tests (skipped without it); NCCL for the NCCL test. Missing ones are reported.
# Exit status: 0 all passed, 1 a test or bench failed or skipped, 2 the build could not be made.
set -u -o pipefail
START=$(date +%s)
DEADLINE=${VRWKV_GPU_DEADLINE_S:-420}
left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build-gpu-results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=${VRWKV_GPU_BUILD:-$ROOT/build-gpu}
STAGE=$ROOT/.gpu-fixtures
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
exec > >(tee -a "$OUT/run.log") 2>&1
TEE_PID=$!
finish() { # exit status; lets tee write the last lines before the results are collected
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null
  exit "$1"
}
note() { echo "$*" | tee -a "$SUMMARY"; }
JOBS=$(nproc 2>/dev/null || echo 4)

echo "== tests/gpu/run.sh $(date -u +%FT%TZ) in $ROOT"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /' | tee -a "$SUMMARY"
else
  note "gpu: nvidia-smi not found"
fi
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$NVCC" ] && "$NVCC" --version | tail -2
cmake --version | head -1; gcc --version | head -1

# ---- dependencies ----
missing=""
export PKG_CONFIG_PATH=${PKG_CONFIG_PATH:-}
extra_cflags=""
cmake_prefix=""
command -v pkg-config >/dev/null || missing="$missing pkg-config"
[ -x "$NVCC" ] || missing="$missing nvcc"
if ! pkg-config --exists libcjson 2>/dev/null; then
  if [ -f "$STAGE/deps/lib/pkgconfig/libcjson.pc" ]; then
    note "deps: system cJSON missing: using the staged copy in .gpu-fixtures/deps"
    export PKG_CONFIG_PATH="$STAGE/deps/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$STAGE/deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    missing="$missing cJSON(libcjson-dev; or run tests/gpu/stage-fixtures.sh where it is installed)"
  fi
fi
for h in jpeglib.h png.h zlib.h; do
  echo "#include <stdio.h>
#include <$h>" | gcc -E -x c - >/dev/null 2>&1 || missing="$missing $h"
done
# (grep reads all: `grep -q` would end ldconfig early, and pipefail would call that a miss)
ldconfig -p 2>/dev/null | grep libopenblas >/dev/null || ls /usr/lib/*/libopenblas* >/dev/null 2>&1 ||
  missing="$missing OpenBLAS"
unit_tests=ON
if ! ldconfig -p 2>/dev/null | grep libcmocka >/dev/null; then
  if [ -f "$STAGE/deps/include/cmocka.h" ]; then
    note "deps: system cmocka missing: using the staged copy (cpu unit tests built)"
    cmake_prefix="$STAGE/deps"
    extra_cflags="-I$STAGE/deps/include"
    export LD_LIBRARY_PATH="$STAGE/deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    unit_tests=OFF
    note "deps: cmocka missing: cpu unit tests not built (the GPU tests do not need it)"
  fi
fi
if [ -n "$missing" ]; then
  note "MISSING:$missing"
  note "result: BUILD NOT POSSIBLE (exit 2)"
  finish 2
fi
if [ -f "$STAGE/fixtures/README.md" ]; then
  export VRWKV_SHARED_DIR=$STAGE
else
  note "fixtures: .gpu-fixtures/ is empty: run tests/gpu/stage-fixtures.sh first and carry .gpu-fixtures (fixture cases will SKIP)"
fi

# ---- build ----
t0=$(date +%s)
# -DVRWKV_WERROR=OFF: warnings are in build.log, but a newer gcc's new warning must not cost the run
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVRWKV_CUDA=ON -DVRWKV_SERVICE=OFF -DVRWKV_WERROR=OFF \
         -DVRWKV_TESTS=$unit_tests -DVRWKV_SHARED_DIR="$STAGE" -DCMAKE_CUDA_COMPILER="$NVCC" \
         ${cmake_prefix:+-DCMAKE_PREFIX_PATH=$cmake_prefix} ${extra_cflags:+-DCMAKE_C_FLAGS=$extra_cflags} &&
       cmake --build "$BUILD" -j"$JOBS" --target vrwkv test_cuda_ops test_cuda_model test_nccl; } > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  note "result: BUILD FAILED (exit 2; see build.log)"
  finish 2
fi
note "build: ok in $(( $(date +%s) - t0 )) s ($(grep -c 'warning:' "$OUT/build.log") warnings in build.log)"

# ---- tests ----
fail=0
skipped=0
rm -f "$OUT/ops.log" "$OUT/model.log" "$OUT/nccl.log" "$OUT/service.log"
run_test() { # name log timeout cmd...   (appends to log: several tests may share one)
  local name=$1 log=$2 limit=$3; shift 3
  local t=$(date +%s) part have
  have=$(( $(left) - 15 ))
  if [ "$have" -lt 20 ]; then
    note "$name: NOT RUN (out of time: $(left) s left of $DEADLINE)"; skipped=$((skipped + 1)); return
  fi
  [ "$limit" -gt "$have" ] && limit=$have
  part=$(mktemp)
  echo "== $name" >> "$log"
  timeout "$limit" "$@" > "$part" 2>&1
  local rc=$?
  cat "$part" >> "$log"
  tail -25 "$part"
  case $rc in
    0) note "$name: PASS ($(( $(date +%s) - t )) s)";;
    77) note "$name: SKIP ($(grep -m1 SKIP "$part"))"; skipped=$((skipped + 1));;
    124) note "$name: TIMEOUT after $limit s"; fail=1;;
    *) note "$name: FAIL (rc $rc; $(grep -m1 FAIL "$part"))"; fail=1;;
  esac
  rm -f "$part"
}
run_test "op tests (cuda vs cpu)" "$OUT/ops.log" 120 "$BUILD/tests/gpu/test_cuda_ops"
if grep -q "^FAIL" "$OUT/ops.log" && command -v compute-sanitizer >/dev/null && [ "$(left)" -gt 240 ]; then
  echo "== compute-sanitizer memcheck on the op tests (first 60 s)" >> "$OUT/ops.log"
  timeout 60 compute-sanitizer --tool memcheck --print-limit 20 "$BUILD/tests/gpu/test_cuda_ops" 2>&1 | grep -E "^=========|FAIL" | head -60 >> "$OUT/ops.log"
fi
run_test "fixture cases on cuda" "$OUT/model.log" 240 "$BUILD/tests/gpu/test_cuda_model"
run_test "fixture cases on cuda, split GEMMs (VRWKV_CUDA_GEMM=split)" "$OUT/model.log" 240 \
  env VRWKV_CUDA_GEMM=split "$BUILD/tests/gpu/test_cuda_model"
run_test "fixture cases on cuda, f32 GEMMs (VRWKV_CUDA_GEMM=f32)" "$OUT/model.log" 240 \
  env VRWKV_CUDA_GEMM=f32 "$BUILD/tests/gpu/test_cuda_model"
run_test "fixture cases on cuda, unfused ops (VRWKV_CUDA_FUSE=0)" "$OUT/model.log" 240 \
  env VRWKV_CUDA_FUSE=0 "$BUILD/tests/gpu/test_cuda_model"
run_test "nccl" "$OUT/nccl.log" 60 "$BUILD/tests/gpu/test_nccl"
# in-process eval on the GPU (device argmax in the batched steps): the fixture VQAv2 questions,
# answered by the cpu and the cuda backends; every question must be answered, and the answers
# that differ are listed (the logits differ in the last bits, so a near-tie may flip)
VQA=$STAGE/eval-fixtures/vqav2/input/eval/vqav2
if [ -f "$VQA/visualrwkv_vqav2_mscoco_val2014.jsonl" ] && [ -f "$STAGE/fixtures/tiny/model.pth" ]; then
  eval_answers() { # backend out
    "$BUILD/vrwkv" eval --backend "$1" --model "$STAGE/fixtures/tiny/model.pth" \
      --config "$STAGE/fixtures/tiny/model.json" --vocab "$STAGE/rwkv_vocab_v20230424.txt" \
      --questions "$VQA/visualrwkv_vqav2_mscoco_val2014.jsonl" --images "$VQA/val2014" --dataset default \
      --out "$2" --quiet --model-id tiny
  }
  compare_answers() {
    local dir; dir=$(mktemp -d)
    eval_answers cpu "$dir/cpu.jsonl" || { echo "FAIL: the cpu eval failed"; return 1; }
    eval_answers "$VRWKV_EVAL_OTHER" "$dir/other.jsonl" || { echo "FAIL: the $VRWKV_EVAL_OTHER eval failed"; return 1; }
    python3 - "$dir/cpu.jsonl" "$dir/other.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
if len(a) != len(b) or not a:
    print(f"FAIL: {len(a)} cpu answers, {len(b)} cuda answers"); sys.exit(1)
diff = [(x["question_id"], x["text"], y["text"]) for x, y in zip(a, b) if x["text"] != y["text"]]
print(f"{len(a)} questions answered on both backends; {len(a) - len(diff)} identical texts")
for d in diff: print("differs:", d)
PY
  }
  export BUILD STAGE VQA VRWKV_EVAL_OTHER=${VRWKV_EVAL_OTHER:-cuda}
  export -f eval_answers compare_answers
  run_test "eval in-process on cuda (fixture VQAv2 questions)" "$OUT/model.log" 180 bash -c compare_answers
fi
# the service on the GPU: `serve --backend cuda --shards 2` driven by `vrwkv client`, from the
# bundle stage-fixtures.sh built (this machine has no gRPC, protobuf-c or hiredis to build it)
if [ -f "$STAGE/service.tar.gz" ] && [ -f "$STAGE/fixtures/tiny/model.pth" ]; then
  rm -rf "$BUILD/service" && tar -C "$BUILD" -xzf "$STAGE/service.tar.gz"
  # CUDA, cuBLAS and NCCL of this machine: where its own build found them
  cudalibs=$(ldd "$BUILD/vrwkv" | awk '$3 ~ /^\// && $1 ~ /^lib(cublas|cudart|nccl)/ {print $3}' |
    xargs -r -n1 dirname | sort -u | tr '\n' ':')
  svc_path="$BUILD/service/lib:$cudalibs${LD_LIBRARY_PATH:-}"
  { echo "== ldd of the service bundle"; LD_LIBRARY_PATH=$svc_path ldd "$BUILD/service/vrwkv" | grep -E "not found|=> /"; } \
    >> "$OUT/service.log" 2>&1
  VRWKV_SERVICE_LOG=$OUT/service.log run_test "service on cuda (serve --shards 2, vrwkv client)" "$OUT/service.log" 150 \
    env LD_LIBRARY_PATH="$svc_path" python3 "$ROOT/tests/gpu/service_cases.py" "$BUILD/service/vrwkv" "$STAGE" \
    "${VRWKV_GPU_SERVICE_BACKEND:-cuda}" # cpu: a dry run of this section without a GPU
else
  note "service on cuda: not staged (tests/gpu/stage-fixtures.sh with VRWKV_GPU_SERVICE=1 builds the bundle)"
fi
grep -E "^(ok|FAIL)" "$OUT/ops.log" | grep -c "^ok" | sed 's/^/op checks passed: /' | tee -a "$SUMMARY"

# ---- benchmarks ----
: > "$OUT/bench.log"
vocab=()
[ -f "$STAGE/rwkv_vocab_v20230424.txt" ] && vocab=(--vocab "$STAGE/rwkv_vocab_v20230424.txt")
for spec in ${VRWKV_GPU_BENCH_SHAPES:-1b6:f16 1b6:f16:f32 1b6:f16:profile 7b:f16 1b6:f16:unfused 1b6:bf16 3b:f16}; do
  IFS=: read -r shape dtype opt <<< "$spec"
  dtype=${dtype:-f16}
  gemm=; fuse=; profile=0; graphs=1
  case $opt in split) gemm=split;; f32) gemm=f32;; unfused) fuse=0;; profile) profile=1; graphs=0;; esac
  # roughly what a shape takes with its random checkpoint still to be written
  case $shape in 7b) need=150;; 3b) need=90;; *) need=50;; esac
  limit=$(( $(left) - 10 ))
  [ "$limit" -gt "${VRWKV_GPU_BENCH_TIMEOUT:-180}" ] && limit=${VRWKV_GPU_BENCH_TIMEOUT:-180}
  if [ "$limit" -lt "$need" ]; then
    note "bench $spec: NOT RUN (out of time: $(left) s left of $DEADLINE)"
    continue
  fi
  echo "== bench --backend cuda --shape $shape --dtype $dtype${gemm:+ (VRWKV_CUDA_GEMM=$gemm)}${fuse:+ (VRWKV_CUDA_FUSE=0)}$([ $profile = 1 ] && echo " (VRWKV_CUDA_PROFILE=1, graphs off: slower; see its profile lines)")" | tee -a "$OUT/bench.log"
  VRWKV_CUDA_GEMM=${gemm:-} VRWKV_CUDA_FUSE=${fuse:-1} VRWKV_CUDA_PROFILE=$profile VRWKV_CUDA_GRAPHS=$graphs \
    timeout "$limit" "$BUILD/vrwkv" bench --backend cuda \
    --shape "$shape" --dtype "$dtype" --cache-dir "${VRWKV_GPU_BENCH_CACHE:-/tmp}" "${vocab[@]}" >> "$OUT/bench.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || { note "bench $spec: FAILED (rc $rc$([ $rc -eq 124 ] && echo ": timed out after $limit s"))"; fail=1; }
  [ "$shape" = 7b ] && rm -f "${VRWKV_GPU_BENCH_CACHE:-/tmp}/vrwkv-bench-$shape-$dtype.pth" # disk: 7b is 15 GB
done
grep -E "^(==|model|backend|prefill|decode|image encode|state|device memory|head GEMV|sampling|bench: wrote)" "$OUT/bench.log" | tee -a "$SUMMARY"
note "time: $(( $(date +%s) - START )) s of $DEADLINE"

if [ $fail -ne 0 ]; then
  note "result: FAILURES (see the logs)"
elif [ $skipped -ne 0 ]; then
  note "result: INCOMPLETE: $skipped test program(s) skipped (no GPU or no fixtures?)"
  fail=1
else
  note "result: ALL PASSED"
fi
finish $fail
