// A base for in-memory InputStream fakes: Read, Seek and Position follow
// from PRead, so a fake writes only PRead, Length and Refresh.
#pragma once

#include <cstdint>

#include "client/filesystem.h"

namespace dfs::test {

class PReadInputStream : public client::InputStream {
 public:
  Result<size_t> Read(void* buf, size_t n) override {
    auto r = PRead(pos_, buf, n);
    if (r.ok()) pos_ += *r;
    return r;
  }
  Status Seek(uint64_t pos) override {
    pos_ = pos;
    return Status::OK();
  }
  uint64_t Position() const override { return pos_; }

 private:
  uint64_t pos_ = 0;
};

}  // namespace dfs::test
