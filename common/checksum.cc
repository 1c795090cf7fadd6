#include "common/checksum.h"

#include <algorithm>

#include <xxhash.h>

namespace dfs {

uint64_t ChunkChecksum(const void* data, size_t n) { return XXH3_64bits(data, n); }

void ComputeChecksums(const char* data, size_t n, size_t chunk, uint64_t* out) {
  for (size_t off = 0, i = 0; off < n; off += chunk, ++i) out[i] = XXH3_64bits(data + off, std::min(chunk, n - off));
}

std::optional<size_t> VerifyChecksums(const char* data, size_t n, size_t chunk, const uint64_t* expected) {
  for (size_t off = 0, i = 0; off < n; off += chunk, ++i) {
    if (XXH3_64bits(data + off, std::min(chunk, n - off)) != expected[i]) return i;
  }
  return std::nullopt;
}

}  // namespace dfs
