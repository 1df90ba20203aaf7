// libortsparse_ops.so loads with dlopen and exports RegisterCustomOps, and nothing of its
// internals. Usage: library_export_test <path of libortsparse_ops.so>
#include <dlfcn.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <libortsparse_ops.so>\n", argv[0]);
    return 2;
  }
  void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
    return 1;
  }
  int failures = 0;
  if (dlsym(library, "RegisterCustomOps") == nullptr) {
    std::fprintf(stderr, "RegisterCustomOps is not exported\n");
    ++failures;
  }
  // An internal symbol (ortsparse::cpu::ExactAttention) must stay hidden.
  if (dlsym(library, "_ZN9ortsparse3cpu14ExactAttentionERKNS_15AttentionParamsERKNS_14ParallelRunnerE") != nullptr) {
    std::fprintf(stderr, "an internal symbol is exported\n");
    ++failures;
  }
  dlclose(library);
  if (failures == 0) std::printf("RegisterCustomOps exported from %s\n", argv[1]);
  return failures == 0 ? 0 : 1;
}
