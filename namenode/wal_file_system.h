// A RocksDB FileSystem whose write-ahead logs are written over zeros that are
// already on disk, instead of appended.
//
// Why: the NameNode acknowledges a mutation only after an fdatasync of the WAL.
// On ext4 an fdatasync after an append must also commit the file's new size
// (a journal commit: more writes and another cache flush), while one after
// rewriting blocks that are already allocated and written only flushes the
// data. On the development VM that makes each sync about a fifth faster, and
// a NameNode's create rate is bound by its syncs.
//
// How: one spare file of `spare_bytes` zeros, written and fdatasynced, is kept
// in the database directory. When RocksDB creates a new WAL, the spare is
// renamed to the WAL's name and opened for writing from offset 0
// (FileSystem::ReuseWritableFile, the same path RocksDB's own log recycling
// takes), and a background thread prepares the next spare. The first WAL
// after the database opens uses the spare the last run left, or one made
// there and then (a new directory, or a crash before the spare was done), so
// a new NameNode's syncs are cheap from its first mutation. Without a spare
// ready (WALs turning over faster than spares are written, or a disk that
// refuses one) the WAL is created the ordinary way.
//
// Crash safety: RocksDB trims a WAL to its written length when it closes it.
// After a crash the WAL ends in zeros, which RocksDB's log reader skips as
// preallocated space (record type 0 is reserved for exactly that), so
// recovery replays every synced record and stops at the zeros.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace rocksdb {
class Env;
class FileSystem;
}  // namespace rocksdb

namespace dfs::namenode {

// The file system for a database in `db_dir`, over the default one. The Env
// wraps it for rocksdb::Options::env; keep it alive as long as the database.
struct WalFileSystem {
  std::shared_ptr<rocksdb::FileSystem> fs;
  std::unique_ptr<rocksdb::Env> env;
};
WalFileSystem NewPrezeroedWalFileSystem(const std::string& db_dir, size_t spare_bytes);

// dfs.namenode.wal.spare-size's default: about one memtable's log.
inline constexpr size_t kDefaultWalSpareBytes = 64 << 20;

// The spare's name in the database directory (RocksDB ignores files it does
// not name itself).
inline constexpr const char* kSpareWalName = "dfs-spare-wal.zeros";

}  // namespace dfs::namenode
