// A ParallelRunner over a small persistent std::thread pool, for tests and benchmarks (the op
// itself uses ONNX Runtime's intra-op pool). The calling thread works too.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include "ortsparse/parallel.h"

namespace ortsparse::testing {

class StdThreadRunner {
 public:
  explicit StdThreadRunner(size_t threads) {
    for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }
  ~StdThreadRunner() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& worker : workers_) worker.join();
  }
  StdThreadRunner(const StdThreadRunner&) = delete;
  StdThreadRunner& operator=(const StdThreadRunner&) = delete;

  ParallelRunner runner() { return ParallelRunner{this, &Run}; }

 private:
  static void Run(void* ctx, size_t total, ParallelRunner::Task fn, void* fn_ctx) {
    static_cast<StdThreadRunner*>(ctx)->RunJob(total, fn, fn_ctx);
  }

  void RunJob(size_t total, ParallelRunner::Task fn, void* fn_ctx) {
    std::unique_lock<std::mutex> lock(mutex_);
    total_ = total;
    fn_ = fn;
    fn_ctx_ = fn_ctx;
    next_ = 0;
    busy_workers_ = workers_.size();
    ++generation_;
    lock.unlock();
    wake_.notify_all();
    Drain();
    lock.lock();
    done_.wait(lock, [this] { return busy_workers_ == 0; });
  }

  void Drain() {
    for (size_t i = next_++; i < total_; i = next_++) fn_(fn_ctx_, i);
  }

  void WorkerLoop() {
    size_t seen_generation = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
      if (stopping_) return;
      seen_generation = generation_;
      lock.unlock();
      Drain();
      lock.lock();
      if (--busy_workers_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  bool stopping_ = false;
  size_t generation_ = 0;
  size_t busy_workers_ = 0;
  // The job; written under the mutex before the generation changes.
  size_t total_ = 0;
  ParallelRunner::Task fn_ = nullptr;
  void* fn_ctx_ = nullptr;
  std::atomic<size_t> next_{0};
};

}  // namespace ortsparse::testing
