#include "common/checksum.h"

#include <algorithm>

#include <xxhash.h>

namespace dfs {

namespace internal {
uint64_t Xxh3Avx2(const void* data, size_t n);
}  // namespace internal

namespace {

using HashFn = uint64_t (*)(const void*, size_t);

uint64_t Xxh3Generic(const void* data, size_t n) { return XXH3_64bits(data, n); }

HashFn ChooseHash() { return __builtin_cpu_supports("avx2") ? internal::Xxh3Avx2 : Xxh3Generic; }

const HashFn kHash = ChooseHash();

}  // namespace

uint64_t ChunkChecksum(const void* data, size_t n) { return kHash(data, n); }

void ComputeChecksums(const char* data, size_t n, size_t chunk, uint64_t* out) {
  for (size_t off = 0, i = 0; off < n; off += chunk, ++i) out[i] = kHash(data + off, std::min(chunk, n - off));
}

std::optional<size_t> VerifyChecksums(const char* data, size_t n, size_t chunk, const uint64_t* expected) {
  for (size_t off = 0, i = 0; off < n; off += chunk, ++i) {
    if (kHash(data + off, std::min(chunk, n - off)) != expected[i]) return i;
  }
  return std::nullopt;
}

}  // namespace dfs
