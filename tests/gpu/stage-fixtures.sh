#!/usr/bin/env bash
# tests/gpu/stage-fixtures.sh [SHARED_DIR] — fills the git-ignored .gpu-fixtures/ of this
# checkout with what tests/gpu/run.sh needs on a GPU machine that receives the checkout but not
# ../shared: fixtures/{tiny,grid,images,tokenizer.json,prompts.json,README.md}, the vocab and
# the VQAv2 eval questions (eval-fixtures/vqav2/input),
# and (deps/) copies of this machine's cJSON and cmocka headers and libraries with pkg-config
# files, used there ONLY if that machine lacks them (it has no package registry). Nothing here
# is committed; the project build itself never uses deps/. About 55 MB: name .gpu-fixtures in
# the device call's carry list.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${1:-$ROOT/../shared}
DEST=$ROOT/.gpu-fixtures
if [ ! -f "$SHARED/fixtures/README.md" ]; then
  echo "stage-fixtures: $SHARED/fixtures/README.md not found: pass the shared/ folder as the argument" >&2
  exit 2
fi
rm -rf "$DEST"
mkdir -p "$DEST/fixtures"
for f in tiny grid images tokenizer.json prompts.json README.md; do
  cp -r "$SHARED/fixtures/$f" "$DEST/fixtures/"
done
cp "$SHARED/rwkv_vocab_v20230424.txt" "$DEST/"
if [ -d "$SHARED/eval-fixtures/vqav2/input" ]; then # for the in-process eval on the GPU
  mkdir -p "$DEST/eval-fixtures/vqav2"
  cp -r "$SHARED/eval-fixtures/vqav2/input" "$DEST/eval-fixtures/vqav2/"
fi

# deps: cJSON and cmocka from this machine (Debian/Ubuntu x86-64 layout)
DEPS=$DEST/deps
mkdir -p "$DEPS/include" "$DEPS/lib/pkgconfig"
lib_dir_of() { # the folder holding $1, or nothing (dirname "" would say ".")
  local f; f=$(ls /usr/lib/*/"$1" /usr/lib/"$1" 2>/dev/null | head -1)
  [ -n "$f" ] && dirname "$f"
  return 0
}
libdir=$(lib_dir_of libcjson.so.1)
if [ -n "$libdir" ] && [ -d /usr/include/cjson ]; then
  cp -r /usr/include/cjson "$DEPS/include/"
  cp -P "$libdir"/libcjson.so* "$DEPS/lib/"
  cat > "$DEPS/lib/pkgconfig/libcjson.pc" <<'PC'
prefix=${pcfiledir}/../..
libdir=${prefix}/lib
includedir=${prefix}/include
Name: libcjson
Description: cJSON (staged copy for tests/gpu/run.sh)
Version: 1.7
Libs: -L${libdir} -lcjson
Cflags: -I${includedir} -I${includedir}/cjson
PC
else
  echo "stage-fixtures: note: no libcjson here to stage (the GPU machine must have libcjson-dev)" >&2
fi
libdir=$(lib_dir_of libcmocka.so.0)
if [ -n "$libdir" ] && [ -f /usr/include/cmocka.h ]; then
  cp /usr/include/cmocka.h "$DEPS/include/"
  [ -f /usr/include/cmocka_pbc.h ] && cp /usr/include/cmocka_pbc.h "$DEPS/include/"
  cp -P "$libdir"/libcmocka.so* "$DEPS/lib/"
fi
# the service, built here (the GPU machine has no gRPC, protobuf-c or hiredis): vrwkv with
# CUDA and the service parts, for a generic x86-64 (-DVRWKV_NATIVE=OFF), and the libraries it
# needs that the GPU machine lacks, as one archive; run.sh runs `serve --backend cuda` from it.
# VRWKV_GPU_SERVICE=0 skips this (it builds for a few minutes the first time).
if [ "${VRWKV_GPU_SERVICE:-1}" != 0 ]; then
  SVC_BUILD=$ROOT/build-gpu-svc
  mkdir -p "$SVC_BUILD"
  cmake -S "$ROOT" -B "$SVC_BUILD" -DCMAKE_BUILD_TYPE=Release -DVRWKV_CUDA=ON -DVRWKV_SERVICE=ON \
    -DVRWKV_NATIVE=OFF -DVRWKV_TESTS=OFF -DVRWKV_GPU_TESTS=OFF > "$SVC_BUILD/stage.log" 2>&1 &&
    cmake --build "$SVC_BUILD" -j"$(nproc)" --target vrwkv >> "$SVC_BUILD/stage.log" 2>&1 ||
    { echo "stage-fixtures: the service build failed (see $SVC_BUILD/stage.log)" >&2; exit 1; }
  pack=$(mktemp -d)
  mkdir -p "$pack/service/lib"
  cp "$SVC_BUILD/vrwkv" "$pack/service/"
  # what the GPU machine (Ubuntu 24.04 with CUDA, libpng, OpenBLAS, OpenSSL 3) lacks
  ldd "$SVC_BUILD/vrwkv" | awk '$3 ~ /^\// {print $3}' |
    grep -E '/lib(absl_|address_sorting|cares|cjson|gpr|grpc|hiredis|jpeg\.so\.62|protobuf-c|re2|upb)' |
    while read -r lib; do cp -L "$lib" "$pack/service/lib/"; done
  tar -C "$pack" -czf "$DEST/service.tar.gz" service
  rm -rf "$pack"
  echo "stage-fixtures: service bundle $(du -h "$DEST/service.tar.gz" | cut -f1)"
fi
du -sh "$DEST"
echo "staged into $DEST; on the GPU machine: tests/gpu/run.sh OUTDIR (carry .gpu-fixtures)"
