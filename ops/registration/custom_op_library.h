// The entry point ONNX Runtime looks up in libortsparse_ops.so
// (SessionOptions.RegisterCustomOpLibrary / RegisterCustomOpLibraryV2).
#pragma once

#include <onnxruntime_c_api.h>

#ifdef __cplusplus
extern "C" {
#endif

// Adds the com.ortsparse domain, with every op of every execution provider table, to `options`.
// Returns null on success, an OrtStatus (owned by the caller) otherwise; never throws.
__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                               const OrtApiBase* api_base);

#ifdef __cplusplus
}
#endif
