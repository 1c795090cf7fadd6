// Block checksums: one XXH3-64 per chunk of dfs.bytes-per-checksum bytes (the
// last chunk of a block may be shorter). The same function is used by writers,
// DataNodes and readers; see doc/design.md for the choice of chunk size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace dfs {

inline constexpr size_t kChecksumBytes = 8;  // one XXH3-64 per chunk

uint64_t ChunkChecksum(const void* data, size_t n);

// Writes ceil(n / chunk) checksums to out.
void ComputeChecksums(const char* data, size_t n, size_t chunk, uint64_t* out);

// Returns the index of the first chunk whose checksum does not match, if any.
std::optional<size_t> VerifyChecksums(const char* data, size_t n, size_t chunk, const uint64_t* expected);

inline size_t NumChunks(size_t n, size_t chunk) { return (n + chunk - 1) / chunk; }

}  // namespace dfs
