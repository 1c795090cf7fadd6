// Every key the NameNode stores in RocksDB, in one place. Integers are
// big-endian so that keys sort numerically and a directory's entries are one
// contiguous, name-sorted range.
//
//   'D' | parent inode id (8) | name      → proto::InodeRecord   directory entry
//   'D' | 0 (8)                           → proto::InodeRecord   the root ("" name)
//   'P' | inode id (8)                    → parent id (8) | name reverse index
//   'B' | block id (8)                    → proto::BlockRecord
//   'M' | meta name                       → value (cluster id, id counters)
//   'J' | job id                          → proto::JobRecord     finished job (history)
//
// A rename rewrites one 'D' key, deletes another and updates one 'P' key, all
// in one WriteBatch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dfs::namenode {

inline constexpr char kDentryPrefix = 'D';
inline constexpr char kParentPrefix = 'P';
inline constexpr char kBlockPrefix = 'B';
inline constexpr char kMetaPrefix = 'M';
inline constexpr char kJobPrefix = 'J';

inline void AppendBE64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>(v >> (i * 8)));
}

inline std::string EncodeBE64(uint64_t v) {
  std::string s;
  AppendBE64(&s, v);
  return s;
}

inline uint64_t DecodeBE64(std::string_view p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[static_cast<size_t>(i)]);
  return v;
}

inline std::string DentryKey(uint64_t parent, std::string_view name) {
  std::string k(1, kDentryPrefix);
  AppendBE64(&k, parent);
  k.append(name);
  return k;
}

// The prefix shared by every entry of one directory.
inline std::string DentryPrefix(uint64_t parent) { return DentryKey(parent, ""); }

inline std::string ParentKey(uint64_t inode) {
  std::string k(1, kParentPrefix);
  AppendBE64(&k, inode);
  return k;
}

inline std::string ParentValue(uint64_t parent, std::string_view name) {
  std::string v;
  AppendBE64(&v, parent);
  v.append(name);
  return v;
}

inline std::string BlockKey(uint64_t block) {
  std::string k(1, kBlockPrefix);
  AppendBE64(&k, block);
  return k;
}

inline std::string MetaKey(std::string_view name) {
  std::string k(1, kMetaPrefix);  // appended, not concatenated: g++ 12 -O2 warns (-Wrestrict) at a string + string here
  k.append(name);
  return k;
}

inline constexpr std::string_view kMetaClusterId = "cluster_id";
inline constexpr std::string_view kMetaNextInodeId = "next_inode_id";
inline constexpr std::string_view kMetaNextBlockId = "next_block_id";
inline constexpr std::string_view kMetaNextGenStamp = "next_gen_stamp";
inline constexpr std::string_view kMetaLayoutVersion = "layout_version";
inline constexpr uint64_t kLayoutVersion = 1;

}  // namespace dfs::namenode
