#!/usr/bin/env bash
# scripts/install-deps.sh — installs the Debian 12 packages vrwkv builds and tests with.
# Does nothing when they are all present. Needs root (or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config python3 redis-server
      libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev
      libopenblas-dev libjpeg-dev libpng-dev zlib1g-dev libcjson-dev libcmocka-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
