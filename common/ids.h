// Strong id types: a BlockId cannot be passed where an InodeId is expected.
// They are plain 64-bit values on the wire and on disk.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

namespace dfs {

template <typename Tag>
class StrongId {
 public:
  constexpr StrongId() = default;
  constexpr explicit StrongId(uint64_t v) : v_(v) {}
  constexpr uint64_t value() const { return v_; }
  constexpr bool valid() const { return v_ != 0; }
  constexpr auto operator<=>(const StrongId&) const = default;

 private:
  uint64_t v_ = 0;
};

using BlockId = StrongId<struct BlockIdTag>;
using InodeId = StrongId<struct InodeIdTag>;
using GenerationStamp = StrongId<struct GenerationStampTag>;

// The root directory's inode id; 0 is never a valid inode.
inline constexpr InodeId kRootInodeId{1};

// "blk_42", as Hadoop prints block names.
inline std::string BlockName(BlockId id) { return "blk_" + std::to_string(id.value()); }

}  // namespace dfs

template <typename Tag>
struct std::hash<dfs::StrongId<Tag>> {
  size_t operator()(const dfs::StrongId<Tag>& id) const noexcept { return std::hash<uint64_t>()(id.value()); }
};
