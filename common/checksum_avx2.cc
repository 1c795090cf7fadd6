// XXH3-64 compiled for AVX2 (this file only is built with -mavx2). Debian's
// libxxhash is built for SSE2, which hashes about half as fast; checksum.cc
// picks this version at start-up when the CPU has AVX2.
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

#include <cstddef>
#include <cstdint>

namespace dfs::internal {

uint64_t Xxh3Avx2(const void* data, size_t n) { return XXH3_64bits(data, n); }

}  // namespace dfs::internal
