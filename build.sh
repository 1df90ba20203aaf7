#!/usr/bin/env bash
# Sets up everything OrtSparse needs and builds it; safe to run again (only what changed is redone).
#   ./build.sh [--gpu]     --gpu also fetches ONNX Runtime's CUDA provider (229 MB)
#   ./build.sh --native-only / --dotnet-only
set -euo pipefail
cd "$(dirname "$0")"
gpu=""; native=1; dotnet_build=1
for arg in "$@"; do
  case $arg in
    --gpu) gpu=--gpu ;;
    --native-only) dotnet_build=0 ;;
    --dotnet-only) native=0 ;;
    *) echo "build.sh: unknown argument $arg (--gpu, --native-only, --dotnet-only)" >&2; exit 2 ;;
  esac
done
for tool in dotnet cmake g++ npm openssl; do
  command -v "$tool" >/dev/null || { echo "build.sh: '$tool' is not installed; README.md lists the prerequisites" >&2; exit 1; }
done
jobs=$(nproc 2>/dev/null || echo 2)

build/fetch-deps.sh $gpu
if ((native)); then
  cmake -S . -B build-native -DCMAKE_BUILD_TYPE=Release -DORTSPARSE_BUILD_TESTS=ON >/dev/null
  cmake --build build-native -j"$jobs"
fi
if ((dotnet_build)); then
  dotnet build OrtSparse.sln -c Release --nologo -v quiet -clp:ErrorsOnly
fi
echo "build.sh: done"
