// BufferPool: fixed-size byte buffers kept for reuse. On the data path a fresh
// buffer costs a page fault per 4 KiB the first time it is touched (about
// 12 µs each on the VMs this runs on), so transfers borrow warm buffers from a
// pool instead of allocating per block or per operation.
//
// Thread-safety: Get() and the return of a Buffer may happen on any thread.
// The pool must outlive every Buffer taken from it.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace dfs {

class BufferPool {
 public:
  // Buffers of `buffer_bytes`; at most `max_idle` are kept when returned.
  BufferPool(size_t buffer_bytes, size_t max_idle) : bytes_(buffer_bytes), max_idle_(max_idle) {}

  // A buffer on loan; goes back to the pool when destroyed.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&&) noexcept = default;
    Buffer& operator=(Buffer&& o) noexcept {
      Release();
      pool_ = o.pool_;
      data_ = std::move(o.data_);
      return *this;
    }
    ~Buffer() { Release(); }
    char* data() const { return data_.get(); }
    explicit operator bool() const { return data_ != nullptr; }

   private:
    friend class BufferPool;
    Buffer(BufferPool* pool, std::unique_ptr<char[]> data) : pool_(pool), data_(std::move(data)) {}
    void Release() {
      if (data_ && pool_) pool_->Return(std::move(data_));
    }
    BufferPool* pool_ = nullptr;
    std::unique_ptr<char[]> data_;
  };

  Buffer Get() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!idle_.empty()) {
        auto d = std::move(idle_.back());
        idle_.pop_back();
        return Buffer(this, std::move(d));
      }
    }
    return Buffer(this, std::unique_ptr<char[]>(new char[bytes_]));
  }

  // A buffer of at least n bytes: a pooled one when n fits, else one of n
  // bytes of its own, freed (not kept) when it goes.
  Buffer GetAtLeast(size_t n) {
    if (n <= bytes_) return Get();
    return Buffer(nullptr, std::unique_ptr<char[]>(new char[n]));
  }

  size_t buffer_bytes() const { return bytes_; }

 private:
  void Return(std::unique_ptr<char[]> d) {
    std::lock_guard<std::mutex> l(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(d));
  }

  const size_t bytes_;
  const size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<char[]>> idle_;
};

}  // namespace dfs
