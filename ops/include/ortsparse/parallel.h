// The kernels' only view of a thread pool: "run fn(fn_ctx, i) for every i < total, in any order and
// on any threads, and return when all calls have returned". The ONNX Runtime layer plugs in the
// session's intra-op pool (KernelContext::ParallelFor); tests and benchmarks plug their own.
#pragma once

#include <cstddef>

namespace ortsparse {

struct ParallelRunner {
  using Task = void (*)(void* fn_ctx, size_t index);

  void* ctx = nullptr;
  void (*run)(void* ctx, size_t total, Task fn, void* fn_ctx) = &RunSerially;

  static void RunSerially(void* /*ctx*/, size_t total, Task fn, void* fn_ctx) {
    for (size_t i = 0; i < total; ++i) fn(fn_ctx, i);
  }
};

// Calls body(i) for every i < total through the runner. body must not throw: it may run on a
// thread pool that does not expect exceptions.
template <typename Body>
void ParallelFor(const ParallelRunner& runner, size_t total, Body& body) {
  if (total == 0) return;
  runner.run(runner.ctx, total, [](void* fn_ctx, size_t index) { (*static_cast<Body*>(fn_ctx))(index); },
             &body);
}

}  // namespace ortsparse
