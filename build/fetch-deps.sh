#!/usr/bin/env bash
# Fetches the pinned ONNX Runtime packages (build/deps.lock) from the npm registry once, checks
# each tarball against its sha512 integrity, and unpacks what the build needs into .deps/:
#   .deps/onnxruntime/include/      official C/C++ API headers (ONNX Runtime 1.29.0)
#   .deps/onnxruntime/lib/          libonnxruntime.so, libonnxruntime_providers_shared.so
#   .deps/onnxruntime/csharp/       official C# API sources (Training/ left out)
#   .deps/onnxruntime-extensions/   libortextensions.so (ONNX Runtime Extensions 0.14.0)
#   .deps/onnxruntime-genai/        libonnxruntime-genai.so, its official C# API sources and C headers
#                                   (ONNX Runtime GenAI 0.15.2, CPU build: the baseline of bench generate)
#   .deps/onnxruntime-gpu/          libonnxruntime_providers_cuda.so (only with --gpu; 229 MB)
# A verified tarball is never downloaded again, so later runs work offline.
#   build/fetch-deps.sh [--gpu]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${ORTSPARSE_DEPS:-$root/.deps}
want_gpu=0
[[ ${1:-} == --gpu ]] && want_gpu=1
mkdir -p "$deps/tarballs"

# npm's integrity is "sha512-" + base64 of the digest.
integrity_of() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

fetch() {  # name version integrity -> path of the verified tarball
  local name=$1 version=$2 integrity=$3
  local tgz="$deps/tarballs/$name-$version.tgz"
  if [[ -f $tgz && $(integrity_of "$tgz") == "$integrity" ]]; then echo "$tgz"; return; fi
  echo "fetching $name@$version from the npm registry" >&2
  local tmp; tmp=$(mktemp -d "$deps/tarballs/.tmp.XXXXXX")
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  local got; got=$(integrity_of "$tmp/$name-$version.tgz")
  if [[ $got != "$integrity" ]]; then
    rm -rf "$tmp"
    echo "fetch-deps: $name@$version failed its integrity check: expected $integrity, got $got" >&2
    exit 1
  fi
  mv "$tmp/$name-$version.tgz" "$tgz"; rm -rf "$tmp"
  echo "$tgz"
}


while read -r name version integrity needed; do
  [[ -z $name || $name == \#* ]] && continue
  [[ $needed == gpu && $want_gpu == 0 ]] && continue
  tgz=$(fetch "$name" "$version" "$integrity")
  case $name in
    com.github.asus4.onnxruntime)
      dest=$deps/onnxruntime; stamp=$dest/.from-$version
      [[ -f $stamp ]] && continue
      rm -rf "$dest" "$dest.x" && mkdir -p "$dest.x" "$dest/include" "$dest/lib" "$dest/csharp"
      tar xzf "$tgz" -C "$dest.x" package/Runtime package/Plugins/Linux/x64 \
        "package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers" package/LICENSE
      cp "$dest.x"/package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers/*.h "$dest/include/"
      cp "$dest.x"/package/Plugins/Linux/x64/*.so "$dest/lib/"
      find "$dest.x/package/Runtime" -name '*.cs' -not -path '*/Training/*' -exec cp {} "$dest/csharp/" \;
      cp "$dest.x/package/LICENSE" "$dest/"
      rm -rf "$dest.x"; touch "$stamp" ;;
    com.github.asus4.onnxruntime-extensions)
      dest=$deps/onnxruntime-extensions; stamp=$dest/.from-$version
      [[ -f $stamp ]] && continue
      rm -rf "$dest" "$dest.x" && mkdir -p "$dest.x" "$dest/lib"
      tar xzf "$tgz" -C "$dest.x" package/Plugins/Linux/x64/libortextensions.so package/LICENSE
      cp "$dest.x/package/Plugins/Linux/x64/libortextensions.so" "$dest/lib/"
      cp "$dest.x/package/LICENSE" "$dest/"
      rm -rf "$dest.x"; touch "$stamp" ;;
    com.github.asus4.onnxruntime-genai)
      dest=$deps/onnxruntime-genai; stamp=$dest/.from-$version
      [[ -f $stamp ]] && continue
      headers="package/Plugins/iOS~/onnxruntime-genai.xcframework/ios-arm64/onnxruntime-genai.framework/Headers"
      rm -rf "$dest" "$dest.x" && mkdir -p "$dest.x" "$dest/include" "$dest/lib" "$dest/csharp"
      tar xzf "$tgz" -C "$dest.x" package/Runtime package/Plugins/Linux/x64/libonnxruntime-genai.so "$headers" package/LICENSE
      cp "$dest.x/$headers"/*.h "$dest/include/"
      cp "$dest.x/package/Plugins/Linux/x64/libonnxruntime-genai.so" "$dest/lib/"
      find "$dest.x/package/Runtime" -name '*.cs' -exec cp {} "$dest/csharp/" \;
      cp "$dest.x/package/LICENSE" "$dest/"
      rm -rf "$dest.x"; touch "$stamp" ;;
    com.github.asus4.onnxruntime.linux-x64-gpu)
      dest=$deps/onnxruntime-gpu; stamp=$dest/.from-$version
      [[ -f $stamp ]] && continue
      rm -rf "$dest" "$dest.x" && mkdir -p "$dest.x" "$dest/lib"
      tar xzf "$tgz" -C "$dest.x" package/Plugins/Linux/x64
      cp "$dest.x"/package/Plugins/Linux/x64/*.so "$dest/lib/"
      rm -rf "$dest.x"; touch "$stamp" ;;
    *) echo "fetch-deps: no unpack rule for $name" >&2; exit 1 ;;
  esac
done < "$root/build/deps.lock"
