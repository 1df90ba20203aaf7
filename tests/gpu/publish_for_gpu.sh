#!/usr/bin/env bash
# Here (not on the GPU host, which has no .NET): publishes the xunit suites tests/OrtSparse.GraphRewriter.Tests
# and tests/OrtSparse.Runtime.Tests self-contained for linux-x64 into out/gpu-publish/app (git-ignored).
# The first references the CLI, so the folder also holds a self-contained `ortsparse`; all share one
# copy of the .NET runtime.
# Left out, because the GPU host brings its own: the op library (built there with CUDA by
# tests/gpu/build_ops_cuda.sh) and ONNX Runtime's libraries (staged under ort/ by --with-ort-cuda;
# tests/gpu/gpu_env.sh links them in). Prints the stage command.
#   bash tests/gpu/publish_for_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=out/gpu-publish
rm -rf "$dest"
for suite in OrtSparse.GraphRewriter.Tests OrtSparse.Runtime.Tests; do
  dotnet publish tests/$suite/$suite.csproj -c Release -r linux-x64 --self-contained true \
    -p:InvariantGlobalization=true -p:DebugType=none -p:DebugSymbols=false -p:GenerateDocumentationFile=false \
    -p:SatelliteResourceLanguages=en --nologo -v quiet -clp:ErrorsOnly -o "$dest/app"
done
for app in OrtSparse.GraphRewriter.Tests OrtSparse.Runtime.Tests ortsparse; do
  [[ -x $dest/app/$app ]] || { echo "publish_for_gpu.sh: $dest/app/$app is missing" >&2; exit 1; }
done
rm -f "$dest"/app/{libortsparse_ops.so,libonnxruntime.so,libonnxruntime_providers_shared.so} "$dest"/app/*.pdb
# GenAI has no CUDA build here (bench generate --device cuda runs with --no-genai): leave its 35 MB out.
rm -f "$dest"/app/libonnxruntime-genai.so
echo "published $(du -sh "$dest" | cut -f1) into $dest (tests: $dest/app/OrtSparse.{GraphRewriter,Runtime}.Tests, CLI: $dest/app/ortsparse)"
echo "stage with: ../shared/gpu/stage.sh --with-ort-cuda $dest .deps/onnxruntime/include"
