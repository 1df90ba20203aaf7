#include "registration/custom_op_library.h"

#include <onnxruntime_cxx_api.h>

#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "registration/op_tables.h"

namespace {

constexpr const char* kDomain = "com.ortsparse";

// The domain every registration adds, created on the first one. Like ONNX Runtime's own custom-op
// library examples, it is released when the library is unloaded: ONNX Runtime keeps the library
// loaded while any session created with it exists, and at process exit this library, loaded after
// ONNX Runtime, is finalised before it.
class SharedDomain {
 public:
  ~SharedDomain() {
    if (domain_ != nullptr) api_->ReleaseCustomOpDomain(domain_);
  }

  OrtStatus* Get(const OrtApi& api, OrtCustomOpDomain** domain) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (domain_ == nullptr) {
      OrtCustomOpDomain* created = nullptr;
      if (OrtStatus* status = api.CreateCustomOpDomain(kDomain, &created)) return status;
      std::vector<const OrtCustomOp*> ops = ortsparse::registration::CpuOps();
#ifdef ORTSPARSE_WITH_CUDA
      const std::vector<const OrtCustomOp*>& cuda_ops = ortsparse::registration::CudaOps();
      ops.insert(ops.end(), cuda_ops.begin(), cuda_ops.end());
#endif
      for (const OrtCustomOp* op : ops) {
        if (OrtStatus* status = api.CustomOpDomain_Add(created, op)) {
          api.ReleaseCustomOpDomain(created);
          return status;
        }
      }
      api_ = &api;
      domain_ = created;
    }
    *domain = domain_;
    return nullptr;
  }

 private:
  std::mutex mutex_;
  const OrtApi* api_ = nullptr;
  OrtCustomOpDomain* domain_ = nullptr;
};

}  // namespace

extern "C" OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {  // an older ONNX Runtime; every API version has CreateStatus
#define ORTSPARSE_STRINGIFY(x) #x
#define ORTSPARSE_VERSION_TEXT(x) ORTSPARSE_STRINGIFY(x)
    return api_base->GetApi(1)->CreateStatus(
        ORT_FAIL, "libortsparse_ops needs ONNX Runtime API version " ORTSPARSE_VERSION_TEXT(ORT_API_VERSION) " or newer");
  }
  try {
    static std::once_flag api_initialised;  // the C++ wrappers used by the kernels read this pointer
    std::call_once(api_initialised, [api] { Ort::InitApi(api); });
    static SharedDomain shared_domain;
    OrtCustomOpDomain* domain = nullptr;
    if (OrtStatus* status = shared_domain.Get(*api, &domain)) return status;
    return api->AddCustomOpDomain(options, domain);
  } catch (const std::exception& error) {
    return api->CreateStatus(ORT_FAIL, (std::string("RegisterCustomOps: ") + error.what()).c_str());
  }
}
