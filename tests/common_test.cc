// Unit tests of common/: config parsing, paths, checksums, status.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include <xxhash.h>

#include "common/checksum.h"
#include "common/config.h"
#include "common/path.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;

TEST_CASE("sizes and durations parse with Hadoop-style suffixes", "[common]") {
  CHECK(*ParseSize("4096") == 4096);
  CHECK(*ParseSize("4k") == 4096);
  CHECK(*ParseSize("128m") == 128ull << 20);
  CHECK(*ParseSize("1G") == 1ull << 30);
  CHECK(*ParseSize("1.5m") == 1572864);
  CHECK_FALSE(ParseSize("12q").ok());
  CHECK_FALSE(ParseSize("").ok());
  CHECK_FALSE(ParseSize("-1").ok());
  CHECK(ParseDuration("3", "s")->count() == 3000);
  CHECK(ParseDuration("250ms", "s")->count() == 250);
  CHECK(ParseDuration("2m", "s")->count() == 120000);
  CHECK_FALSE(ParseDuration("3 fortnights", "s").ok());
}

TEST_CASE("host:port parsing accepts dfs:// and hdfs:// URIs", "[common]") {
  std::string host;
  uint16_t port = 0;
  REQUIRE_OK(ParseHostPort("dfs://10.0.0.1:8020/", &host, &port));
  CHECK(host == "10.0.0.1");
  CHECK(port == 8020);
  REQUIRE_OK(ParseHostPort("hdfs://namenode:9000", &host, &port));
  CHECK(host == "namenode");
  CHECK_FALSE(ParseHostPort("nohost", &host, &port).ok());
  CHECK_FALSE(ParseHostPort("h:99999", &host, &port).ok());
}

TEST_CASE("config files, overrides, unknown keys and bad values", "[common]") {
  test::TempDir dir;
  const std::string file = dir.path() + "/dfs.conf";
  {
    std::ofstream out(file);
    out << "# a comment\n\ndfs.replication = 2   # trailing comment\ndfs.blocksize=4m\n";
  }
  auto c = Config::Load(file, {{"dfs.replication", "1"}});
  REQUIRE_OK(c.status());
  CHECK(c->GetInt("dfs.replication") == 1);
  CHECK(c->GetSize("dfs.blocksize") == 4u << 20);
  CHECK(c->GetDuration("dfs.heartbeat.interval").count() == 3000);

  {
    std::ofstream out(file);
    out << "dfs.replicaton = 2\n";
  }
  auto bad = Config::Load(file);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("dfs.conf:1") && Catch::Contains("unknown configuration key"));
  {
    std::ofstream out(file);
    out << "dfs.blocksize = lots\n";
  }
  CHECK_THAT(Config::Load(file).status().message(), Catch::Contains("bad value 'lots' for dfs.blocksize"));
  CHECK_FALSE(Config::Load(dir.path() + "/missing.conf").ok());
  CHECK_THAT(Config::DumpDefaults(), Catch::Contains("dfs.replication = 3"));
}

TEST_CASE("with no file named, a user's own dfs.conf wins over the machine's", "[common]") {
  test::TempDir dir;
  const std::string system_file = dir.path() + "/etc-dfs.conf";
  {
    std::ofstream out(system_file);
    out << "dfs.replication = 2\nfs.defaultFS = dfs://server.lab:8020\n";
  }
  test::ScopedEnv home("DFS_HOME", (dir.path() + "/home").c_str());
  test::ScopedEnv no_conf("DFS_CONF", nullptr);

  // No $DFS_HOME/dfs.conf: the machine's file.
  auto c = Config::Load("", {}, system_file);
  REQUIRE_OK(c.status());
  CHECK(c->source() == system_file);
  CHECK(c->GetInt("dfs.replication") == 2);
  CHECK(c->GetString("fs.defaultFS") == "dfs://server.lab:8020");

  // Neither: the defaults.
  c = Config::Load("", {}, dir.path() + "/absent.conf");
  REQUIRE_OK(c.status());
  CHECK(c->source().empty());
  CHECK(c->GetInt("dfs.replication") == 3);

  // The user's own file, even an empty one, replaces the machine's whole.
  std::filesystem::create_directories(dir.path() + "/home");
  { std::ofstream out(dir.path() + "/home/dfs.conf"); }
  c = Config::Load("", {}, system_file);
  REQUIRE_OK(c.status());
  CHECK(c->source() == dir.path() + "/home/dfs.conf");
  CHECK(c->GetInt("dfs.replication") == 3);

  // So does $DFS_CONF.
  test::ScopedEnv conf("DFS_CONF", system_file.c_str());
  c = Config::Load("", {}, dir.path() + "/absent.conf");
  REQUIRE_OK(c.status());
  CHECK(c->GetInt("dfs.replication") == 2);
}

TEST_CASE("path validation refuses hostile names", "[common]") {
  CHECK(ValidatePath("/").ok());
  CHECK(ValidatePath("/a/b c/ünïcødé").ok());
  CHECK_CODE(ValidatePath(""), kInvalidArgument);
  CHECK_CODE(ValidatePath("relative"), kInvalidArgument);
  CHECK_CODE(ValidatePath("/a//b"), kInvalidArgument);
  CHECK_CODE(ValidatePath("/a/"), kInvalidArgument);
  CHECK_CODE(ValidatePath("/a/./b"), kInvalidArgument);
  CHECK_CODE(ValidatePath("/a/../b"), kInvalidArgument);
  CHECK_CODE(ValidatePath(std::string("/a\0b", 4)), kInvalidArgument);
  CHECK_CODE(ValidatePath("/" + std::string(256, 'x')), kInvalidArgument);
  CHECK(ValidatePath("/" + std::string(255, 'x')).ok());
  std::string deep;
  while (deep.size() <= kMaxPathBytes) deep += "/abcdefgh";
  CHECK_CODE(ValidatePath(deep), kInvalidArgument);
}

TEST_CASE("client paths normalise like Hadoop's", "[common]") {
  CHECK(NormalizePath("f.txt", "/user/alice") == "/user/alice/f.txt");
  CHECK(NormalizePath("../bob/x", "/user/alice") == "/user/bob/x");
  CHECK(NormalizePath("/a//b/", "/user/alice") == "/a/b");
  CHECK(NormalizePath("hdfs://nn:8020/data/x", "/user/alice") == "/data/x");
  CHECK(NormalizePath(".", "/user/alice") == "/user/alice");
  CHECK(ParentPath("/a/b") == "/a");
  CHECK(ParentPath("/a") == "/");
  CHECK(BaseName("/a/b") == "b");
  CHECK(IsSameOrUnder("/a/b", "/a"));
  CHECK_FALSE(IsSameOrUnder("/ab", "/a"));
}

TEST_CASE("chunk checksums catch any flipped bit", "[common]") {
  std::string data = test::RandomBytes(200000, 5);
  const size_t chunk = 65536;
  std::vector<uint64_t> sums(NumChunks(data.size(), chunk));
  ComputeChecksums(data.data(), data.size(), chunk, sums.data());
  CHECK_FALSE(VerifyChecksums(data.data(), data.size(), chunk, sums.data()).has_value());
  data[150000] ^= 1;
  auto bad = VerifyChecksums(data.data(), data.size(), chunk, sums.data());
  REQUIRE(bad.has_value());
  CHECK(*bad == 2);
}

TEST_CASE("conf/dfs.conf documents every configuration key and parses", "[common]") {
  const std::string path = std::string(DFS_SOURCE_DIR) + "/conf/dfs.conf";
  std::ifstream in(path);
  REQUIRE(in);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& k : AllConfigKeys()) {
    INFO(k.name);
    CHECK_THAT(text, Catch::Contains(std::string("\n") + k.name + " = "));
  }
  // Below its own header, the file is what --dump-default-config prints: each
  // key's text is written once, in common/config.cc, and cannot drift here.
  const std::string dump = Config::DumpDefaults();
  CHECK_THAT(text, Catch::EndsWith(dump.substr(dump.find('\n'))));
  REQUIRE_OK(Config::Load(path).status());
}

TEST_CASE("the dispatched checksum equals the reference XXH3", "[common]") {
  for (size_t n : {0, 1, 15, 16, 240, 241, 1000, 65536, 65537}) {
    std::string data = test::RandomBytes(n, n);
    CHECK(ChunkChecksum(data.data(), n) == XXH3_64bits(data.data(), n));
  }
}
