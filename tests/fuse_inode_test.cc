// The FUSE mount's inode table and errno mapping, without a kernel.
#include <cerrno>

#include <catch2/catch.hpp>

#include "fuse/errno_map.h"
#include "fuse/inode_table.h"

using namespace dfs;
using namespace dfs::fuse;

TEST_CASE("inode numbers are NameNode ids, counted per lookup and forgotten at zero", "[fuse]") {
  InodeTable t;
  CHECK(t.Path(kRootIno) == "/");
  CHECK(t.Add("/a", 17) == 17);
  CHECK(t.Add("/a", 17) == 17);
  CHECK(t.lookups(17) == 2);
  t.Forget(17, 1);
  CHECK(t.Path(17) == "/a");
  t.Forget(17, 1);
  CHECK_FALSE(t.Path(17).has_value());
  t.Forget(kRootIno, 100);  // the root is never forgotten
  CHECK(t.Path(kRootIno) == "/");
  CHECK(t.Add("/", 1) == kRootIno);
}

TEST_CASE("a rename moves a whole subtree's paths and nothing else", "[fuse]") {
  InodeTable t;
  t.Add("/d", 2);
  t.Add("/d/x", 3);
  t.Add("/d/sub/y", 4);
  t.Add("/dd", 5);  // shares a prefix, not a parent
  t.Renamed("/d", "/e/f");
  CHECK(t.Path(2) == "/e/f");
  CHECK(t.Path(3) == "/e/f/x");
  CHECK(t.Path(4) == "/e/f/sub/y");
  CHECK(t.Path(5) == "/dd");
  // The same id seen under a new name (renamed by another client) follows it.
  t.Add("/elsewhere", 3);
  CHECK(t.Path(3) == "/elsewhere");
  CHECK(t.lookups(3) == 2);
}

TEST_CASE("one table maps every status to the errno tools expect", "[fuse]") {
  CHECK(ErrnoOf(Status::OK()) == 0);
  CHECK(ErrnoOf(Status::NotFound("x")) == ENOENT);
  CHECK(ErrnoOf(Status::PermissionDenied("x")) == EACCES);
  CHECK(ErrnoOf(Status::SafeMode("x")) == EROFS);
  CHECK(ErrnoOf(Status::NoSpace("x")) == ENOSPC);
  CHECK(ErrnoOf(Status::Unavailable("x")) == EIO);
  CHECK(ErrnoOf(Status::NotEmpty("x")) == ENOTEMPTY);
  CHECK(ErrnoOf(Status::NotSupported("x")) == EOPNOTSUPP);
  CHECK(ErrnoOf(Status::LeaseConflict("x")) == EBUSY);
  CHECK(NotSent(Status::Unavailable("cannot connect to NameNode 127.0.0.1:1: Connection refused")));
  CHECK_FALSE(NotSent(Status::Unavailable("lost connection to NameNode 127.0.0.1:1: reset")));
  CHECK(Unreachable(Status::TimedOut("NameNode did not answer")));
}
