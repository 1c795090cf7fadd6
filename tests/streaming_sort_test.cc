// The streaming runner's map-side sort and the merge: key splitting,
// partitioning and ordering (KeySpec), MapOutputCollector against
// std::stable_sort with many spills and partitions, combiners, the index file,
// and LineMerger's stability. A hidden [streaming_bench] case measures the sort.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "streaming/key_spec.h"
#include "streaming/map_output.h"
#include "streaming/merge.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using dfs::Result;
using dfs::Status;
using dfs::streaming::FileLineSource;
using dfs::streaming::KeySpec;
using dfs::streaming::LineMerger;
using dfs::streaming::LineSource;
using dfs::streaming::MapOutputCollector;
using dfs::streaming::MemoryLineSource;
using dfs::streaming::Segment;
using dfs::test::TempDir;

namespace {

using Conf = std::map<std::string, std::string>;

Result<KeySpec> SpecFrom(const Conf& conf, bool key_field_partitioner = false, uint32_t reduces = 4) {
  return KeySpec::FromConf(
      [&](std::string_view key) {
        auto it = conf.find(std::string(key));
        return it == conf.end() ? std::string() : it->second;
      },
      key_field_partitioner, reduces);
}

KeySpec MustSpec(const Conf& conf, bool key_field_partitioner = false) {
  auto spec = SpecFrom(conf, key_field_partitioner);
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *spec;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using Partitions = std::vector<std::vector<std::string>>;

// The lines of each segment of a map output file; every segment must end in '\n'.
Partitions ReadOutput(const std::string& path, const std::vector<Segment>& segments) {
  std::string data = ReadAll(path);
  Partitions out(segments.size());
  uint64_t expect_offset = 0;
  for (size_t p = 0; p < segments.size(); ++p) {
    const Segment& s = segments[p];
    CHECK(s.offset == expect_offset);
    expect_offset = s.offset + s.length;
    REQUIRE(s.offset + s.length <= data.size());
    std::string_view seg(data.data() + s.offset, s.length);
    if (!seg.empty()) REQUIRE(seg.back() == '\n');
    while (!seg.empty()) {
      size_t nl = seg.find('\n');
      out[p].emplace_back(seg.substr(0, nl));
      seg.remove_prefix(nl + 1);
    }
    CHECK(out[p].size() == s.records);
  }
  CHECK(expect_offset == data.size());
  return out;
}

// What the collector must produce: lines by partition, stably sorted by key.
Partitions Expected(const KeySpec& spec, uint32_t partitions, const std::vector<std::string>& lines) {
  Partitions out(partitions);
  for (const std::string& l : lines) out[spec.Partition(spec.SplitKey(l), partitions)].push_back(l);
  for (auto& part : out) {
    std::stable_sort(part.begin(), part.end(), [&](const std::string& a, const std::string& b) {
      return spec.Compare(spec.SplitKey(a), spec.SplitKey(b)) < 0;
    });
  }
  return out;
}

// Random lines whose keys stress the sort: ties on the first 8 and 16 bytes,
// keys that are prefixes of others (also with trailing zero bytes), bytes above
// 0x7f, long shared prefixes, lines without a separator.
std::vector<std::string> RandomLines(std::mt19937_64& rng, size_t n) {
  static const std::vector<std::string> kKeys = {
      "",
      "a",
      "ab",
      std::string("ab\0", 3),
      "abc",
      "abcdefg",
      "abcdefgh",
      "abcdefghi",
      "abcdefghij",
      std::string("abcdefgh\0", 9),
      "abcdefghijklmnop",
      "abcdefghijklmnopq",
      "\x80",
      "\xff",
      "\xff\xfe",
      "zz",
      "b",
      "word",
      "words",
  };
  std::vector<std::string> lines;
  std::uniform_int_distribution<int> pick(0, 9);
  for (size_t i = 0; i < n; ++i) {
    std::string key;
    switch (pick(rng)) {
      case 0:
      case 1:
      case 2:
        key = kKeys[rng() % kKeys.size()];
        break;
      case 3: {
        static const std::string kTails[] = {"", std::string("\0", 1), "a", std::string("\0a", 2), "b"};
        key = std::string(16 + rng() % 16, 'p') + kTails[rng() % 5];
        break;
      }
      default:
        for (int len = static_cast<int>(rng() % 12); len > 0; --len) {
          char c = static_cast<char>(rng() % 256);
          if (c == '\n' || c == '\t') c = 'x';
          // Mostly a small alphabet, so keys collide.
          key.push_back(rng() % 4 == 0 ? c : static_cast<char>('a' + rng() % 3));
        }
    }
    std::string line = key;
    if (rng() % 8 != 0) line += "\t" + std::to_string(i) + (rng() % 4 == 0 ? "\tmore\tfields" : "");
    lines.push_back(std::move(line));
  }
  return lines;
}

// Runs lines through a collector and returns its output by partition.
Partitions Collect(const KeySpec& spec, uint32_t partitions, size_t buffer, const std::vector<std::string>& lines,
                   MapOutputCollector::Combiner combiner = nullptr, uint32_t merge_factor = 64,
                   dfs::streaming::MapOutputCounters* counters = nullptr) {
  TempDir dir;
  const std::string out = dir.path() + "/file.out";
  Partitions result;
  {
    MapOutputCollector c(spec, partitions, dir.path() + "/spill", buffer, std::move(combiner));
    c.set_merge_factor(merge_factor);
    for (const std::string& l : lines) REQUIRE_OK(c.Add(l));
    auto segments = c.Finish(out);
    INFO(segments.status().ToString());
    REQUIRE(segments.ok());
    REQUIRE(segments->size() == partitions);
    auto index = MapOutputCollector::ReadIndex(MapOutputCollector::IndexPath(out));
    REQUIRE(index.ok());
    CHECK(*index == *segments);
    result = ReadOutput(out, *segments);
    if (counters) *counters = c.counters();
    CHECK(c.counters().records_in == lines.size());
  }
  // Only the output and its index are left behind.
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (e.is_regular_file()) left.push_back(e.path().filename().string());
  }
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"file.out", "file.out.index"});
  return result;
}

// Word-count combiner: sums "word\tN" lines with equal words (given sorted).
Status SumCombiner(uint32_t, const std::vector<std::string_view>& lines,
                   const std::function<Status(std::string_view)>& emit) {
  size_t i = 0;
  while (i < lines.size()) {
    std::string_view word = lines[i].substr(0, lines[i].find('\t'));
    long sum = 0;
    for (; i < lines.size() && lines[i].substr(0, lines[i].find('\t')) == word; ++i) {
      sum += std::stol(std::string(lines[i].substr(lines[i].find('\t') + 1)));
    }
    std::string out = std::string(word) + "\t" + std::to_string(sum);
    DFS_RETURN_IF_ERROR(emit(out));
  }
  return Status::OK();
}

std::string MakeWord(std::mt19937_64& rng, size_t vocabulary) {
  // Zipf-like: frequent words are short.
  double u = std::uniform_real_distribution<double>(0, 1)(rng);
  size_t rank = static_cast<size_t>(std::pow(static_cast<double>(vocabulary), u));
  std::mt19937 wr(static_cast<uint32_t>(rank));
  size_t len = 2 + rank % 2 + static_cast<size_t>(std::log10(static_cast<double>(rank)) * 0.9);
  std::string w;
  for (size_t i = 0; i < len; ++i) w.push_back(static_cast<char>('a' + wr() % 26));
  return w;
}

}  // namespace

TEST_CASE("streaming key spec splits keys with one or more key fields", "[streaming]") {
  KeySpec spec;
  CHECK(spec.SplitKey("a\tb\tc") == "a");
  CHECK(spec.SplitKey("abc") == "abc");
  CHECK(spec.SplitKey("") == "");
  CHECK(spec.SplitKey("\tv") == "");
  spec.num_key_fields = 2;
  CHECK(spec.SplitKey("a\tb\tc") == "a\tb");
  CHECK(spec.SplitKey("a\tb") == "a\tb");
  spec.num_key_fields = 3;
  CHECK(spec.SplitKey("a\tb\tc") == "a\tb\tc");
  CHECK(spec.SplitKey("a\tb\tc\td") == "a\tb\tc");

  KeySpec dots = MustSpec({{"stream.map.output.field.separator", "."}, {"stream.num.map.output.key.fields", "2"}});
  CHECK(dots.SplitKey("1.2.3.4") == "1.2");
  KeySpec multi = MustSpec({{"stream.map.output.field.separator", "::"}});
  CHECK(multi.SplitKey("a:b::c::d") == "a:b");
  CHECK(multi.SplitKey("a:b:c") == "a:b:c");
  KeySpec escaped = MustSpec({{"stream.map.output.field.separator", "\\x01"}});
  CHECK(escaped.field_separator == "\x01");
  CHECK(escaped.SplitKey("k\x01v") == "k");
  CHECK(MustSpec({{"stream.map.output.field.separator", "\\t"}}).field_separator == "\t");
  CHECK(MustSpec({{"stream.map.output.field.separator", "\\\\"}}).field_separator == "\\");
}

TEST_CASE("streaming key spec rejects bad values naming the key", "[streaming]") {
  auto expect_bad = [](const Conf& conf, const std::string& key) {
    auto r = SpecFrom(conf);
    INFO(r.status().ToString());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == dfs::StatusCode::kInvalidArgument);
    CHECK(r.status().message().find(key) != std::string::npos);
    CHECK(r.status().message().find("example") != std::string::npos);
  };
  expect_bad({{"stream.num.map.output.key.fields", "0"}}, "stream.num.map.output.key.fields");
  expect_bad({{"stream.num.map.output.key.fields", "two"}}, "stream.num.map.output.key.fields");
  expect_bad({{"stream.map.output.field.separator", "\\q"}}, "stream.map.output.field.separator");
  expect_bad({{"stream.map.output.field.separator", "\\x4"}}, "stream.map.output.field.separator");
  expect_bad({{"mapreduce.partition.keycomparator.options", "-k0"}}, "mapreduce.partition.keycomparator.options");
  expect_bad({{"mapreduce.partition.keycomparator.options", "-k2,1"}}, "mapreduce.partition.keycomparator.options");
  expect_bad({{"mapreduce.partition.keycomparator.options", "-k1,1b"}}, "mapreduce.partition.keycomparator.options");
  expect_bad({{"mapreduce.partition.keycomparator.options", "-u"}}, "mapreduce.partition.keycomparator.options");
  expect_bad({{"mapreduce.job.output.key.comparator.class", "org.example.MyComparator"}},
             "mapreduce.job.output.key.comparator.class");
  auto r = SpecFrom({{"mapreduce.partition.keypartitioner.options", "-k"}}, true);
  CHECK_FALSE(r.ok());
}

TEST_CASE("streaming key-field partitioner hashes only the selected fields", "[streaming]") {
  for (const Conf& conf :
       {Conf{{"stream.num.map.output.key.fields", "2"}, {"mapreduce.partition.keypartitioner.options", "-k1,1"}},
        Conf{{"stream.num.map.output.key.fields", "2"}, {"num.key.fields.for.partition", "1"}},
        Conf{{"stream.num.map.output.key.fields", "2"}, {"mapred.text.key.partitioner.options", "-k1.1,1.3"}}}) {
    KeySpec spec = MustSpec(conf, /*key_field_partitioner=*/true);
    CHECK(spec.SplitKey("a\tx\tvalue") == "a\tx");
    std::set<uint32_t> seen;
    for (int i = 0; i < 200; ++i) {
      std::string first = "k" + std::to_string(i);
      uint32_t p = spec.Partition(first + "\tx", 16);
      CHECK(spec.Partition(first + "\ty", 16) == p);
      CHECK(spec.Partition(first + "\tsomething else", 16) == p);
      seen.insert(p);
    }
    CHECK(seen.size() > 8);  // still spread over the partitions
  }
  // Without the key-field partitioner the whole key is hashed.
  KeySpec whole =
      MustSpec({{"stream.num.map.output.key.fields", "2"}, {"mapreduce.partition.keypartitioner.options", "-k1,1"}});
  int differ = 0;
  for (int i = 0; i < 50; ++i) {
    std::string first = "k" + std::to_string(i);
    differ += whole.Partition(first + "\tx", 16) != whole.Partition(first + "\ty", 16);
  }
  CHECK(differ > 20);
  // Deterministic, and within range.
  KeySpec plain;
  CHECK(plain.Partition("hello", 7) == plain.Partition("hello", 7));
  CHECK(plain.Partition("hello", 1) == 0);
  for (int i = 0; i < 1000; ++i) CHECK(plain.Partition(std::to_string(i), 3) < 3);
}

TEST_CASE("streaming key comparator options order by fields numerically and in reverse", "[streaming]") {
  KeySpec spec =
      MustSpec({{"stream.num.map.output.key.fields", "2"}, {"mapreduce.partition.keycomparator.options", "-k2,2nr"}});
  std::vector<std::string> keys = {"a\t10", "b\t9", "c\t100", "d\t-3", "e\t9.5", "f\t"};
  std::stable_sort(keys.begin(), keys.end(), [&](auto& x, auto& y) { return spec.Compare(x, y) < 0; });
  CHECK(keys == std::vector<std::string>{"c\t100", "a\t10", "e\t9.5", "b\t9", "f\t", "d\t-3"});

  KeySpec two = MustSpec({{"mapreduce.job.output.key.comparator.class",
                           "org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedComparator"},
                          {"stream.num.map.output.key.fields", "2"},
                          {"mapreduce.partition.keycomparator.options", "-k1,1 -k2,2n"}});
  CHECK(two.Compare("a\t2", "a\t10") < 0);
  CHECK(two.Compare("b\t2", "a\t10") > 0);
  CHECK(two.Compare("a\t007", "a\t7") == 0);

  KeySpec chars = MustSpec({{"mapreduce.partition.keycomparator.options", "-k1.2,1.3"}});
  CHECK(chars.Compare("xab", "yab") == 0);
  CHECK(chars.Compare("xab", "yac") < 0);
  CHECK(chars.Compare("xabz", "yab") == 0);

  KeySpec global = MustSpec({{"mapreduce.partition.keycomparator.options", "-nr"}});
  CHECK(global.Compare("2", "10") > 0);
  KeySpec dots = MustSpec({{"mapreduce.map.output.key.field.separator", "."},
                           {"mapreduce.partition.keycomparator.options", "-k2,2n -k1,1r"}});
  CHECK(dots.Compare("a.2", "b.10") < 0);
  CHECK(dots.Compare("a.2", "b.2") > 0);
  // Text's comparator is the bytewise default.
  CHECK(MustSpec({{"mapreduce.job.output.key.comparator.class", "org.apache.hadoop.io.Text$Comparator"},
                  {"mapreduce.partition.keycomparator.options", "-k2,2nr"}})
            .bytewise());
}

TEST_CASE("streaming bytewise order is unsigned with shorter keys first", "[streaming]") {
  KeySpec spec;
  CHECK(spec.Compare("a", "\x80") < 0);
  CHECK(spec.Compare("\x80", "\xff") < 0);
  CHECK(spec.Compare("ab", "abc") < 0);
  CHECK(spec.Compare("ab", std::string("ab\0", 3)) < 0);
  CHECK(spec.Compare("", "a") < 0);
  CHECK(dfs::streaming::KeyPrefix("ab") < dfs::streaming::KeyPrefix("\x80"));
  CHECK(dfs::streaming::KeyPrefix("abcdefgh") == dfs::streaming::KeyPrefix("abcdefghZ"));

  std::vector<std::string> lines = {"\xff\t1", "b\t2", "\x80\t3", "a\t4", "B\t5", "\x7f\t6", "\x81\t7"};
  Partitions out = Collect(spec, 1, 1 << 20, lines);
  CHECK(out[0] == std::vector<std::string>{"B\t5", "a\t4", "b\t2", "\x7f\t6", "\x80\t3", "\x81\t7", "\xff\t1"});
}

TEST_CASE("streaming collector matches stable sort with many spills and partitions", "[streaming]") {
  std::mt19937_64 rng(42);
  std::vector<std::string> lines = RandomLines(rng, 20000);
  for (uint32_t partitions : {1u, 5u}) {
    for (size_t buffer : {size_t{4} << 10, size_t{64} << 10, size_t{16} << 20}) {
      for (uint32_t factor : {3u, 64u}) {
        KeySpec spec;
        DYNAMIC_SECTION("partitions " << partitions << " buffer " << buffer << " merge factor " << factor) {
          dfs::streaming::MapOutputCounters counters;
          Partitions got = Collect(spec, partitions, buffer, lines, nullptr, factor, &counters);
          CHECK(got == Expected(spec, partitions, lines));
          CHECK(counters.records_out == lines.size());
          if (buffer == (size_t{4} << 10)) CHECK(counters.spills > 50);
          if (buffer == (size_t{16} << 20)) CHECK(counters.spills == 0);
        }
      }
    }
  }
}

TEST_CASE("streaming collector sorts with two key fields and a key-field comparator", "[streaming]") {
  std::mt19937_64 rng(7);
  std::vector<std::string> lines;
  for (int i = 0; i < 5000; ++i) {
    lines.push_back(std::string(1, static_cast<char>('a' + rng() % 5)) + "\t" + std::to_string(rng() % 200) + "\t" +
                    std::to_string(i));
  }
  KeySpec numeric = MustSpec({{"stream.num.map.output.key.fields", "2"},
                              {"mapreduce.partition.keypartitioner.options", "-k1,1"},
                              {"mapreduce.partition.keycomparator.options", "-k1,1 -k2,2nr"}},
                             true);
  CHECK(Collect(numeric, 3, 8 << 10, lines) == Expected(numeric, 3, lines));
  KeySpec two_fields = MustSpec({{"stream.num.map.output.key.fields", "2"}});
  CHECK(Collect(two_fields, 3, 8 << 10, lines, nullptr, 4) == Expected(two_fields, 3, lines));
}

TEST_CASE("streaming combiner runs on spills and the totals stay right", "[streaming]") {
  std::mt19937_64 rng(3);
  std::map<std::string, long> truth;
  std::vector<std::string> lines;
  for (int i = 0; i < 30000; ++i) {
    std::string w = MakeWord(rng, 300);
    truth[w] += 1;
    lines.push_back(w + "\t1");
  }
  KeySpec spec;
  for (size_t buffer : {size_t{16} << 10, size_t{8} << 20}) {
    dfs::streaming::MapOutputCounters counters;
    uint32_t calls = 0;
    MapOutputCollector::Combiner combiner = [&](uint32_t p, const std::vector<std::string_view>& in,
                                                const std::function<Status(std::string_view)>& emit) {
      ++calls;
      CHECK(std::is_sorted(in.begin(), in.end(),
                           [&](auto a, auto b) { return spec.Compare(spec.SplitKey(a), spec.SplitKey(b)) < 0; }));
      return SumCombiner(p, in, emit);
    };
    Partitions got = Collect(spec, 4, buffer, lines, combiner, 3, &counters);
    std::map<std::string, long> totals;
    size_t out_lines = 0;
    for (uint32_t p = 0; p < 4; ++p) {
      for (const std::string& l : got[p]) {
        std::string w = l.substr(0, l.find('\t'));
        CHECK(spec.Partition(w, 4) == p);
        totals[w] += std::stol(l.substr(l.find('\t') + 1));
      }
      CHECK(std::is_sorted(got[p].begin(), got[p].end(),
                           [&](auto& a, auto& b) { return spec.Compare(spec.SplitKey(a), spec.SplitKey(b)) < 0; }));
      out_lines += got[p].size();
    }
    CHECK(totals == truth);
    CHECK(calls > 0);
    CHECK(counters.combine_input_records == lines.size());
    CHECK(counters.combine_output_records < lines.size() / 2);
    CHECK(counters.records_out == out_lines);
    if (buffer == (size_t{8} << 20)) CHECK(out_lines == truth.size());
  }
}

TEST_CASE("streaming combiner output out of key order is sorted again", "[streaming]") {
  std::vector<std::string> lines;
  for (int i = 0; i < 3000; ++i) lines.push_back("k" + std::to_string(i % 97) + "\t1");
  KeySpec spec;
  auto reversing = [&](uint32_t p, const std::vector<std::string_view>& in,
                       const std::function<Status(std::string_view)>& emit) -> Status {
    std::vector<std::string> out;
    DFS_RETURN_IF_ERROR(SumCombiner(p, in, [&](std::string_view l) {
      out.emplace_back(l);
      return Status::OK();
    }));
    for (auto it = out.rbegin(); it != out.rend(); ++it) DFS_RETURN_IF_ERROR(emit(*it));
    return Status::OK();
  };
  Partitions got = Collect(spec, 2, 4 << 10, lines, reversing, 64);
  for (auto& part : got) {
    CHECK(std::is_sorted(part.begin(), part.end(),
                         [&](auto& a, auto& b) { return spec.Compare(spec.SplitKey(a), spec.SplitKey(b)) < 0; }));
  }
}

TEST_CASE("streaming combiner errors fail the collector", "[streaming]") {
  TempDir dir;
  KeySpec spec;
  auto failing = [](uint32_t, const std::vector<std::string_view>&, const std::function<Status(std::string_view)>&) {
    return Status::IOError("combiner process exited with status 1");
  };
  MapOutputCollector c(spec, 2, dir.path(), 4 << 10, failing);
  Status s;
  for (int i = 0; i < 1000 && s.ok(); ++i) s = c.Add("w" + std::to_string(i) + "\t1");
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("combiner process exited") != std::string::npos);

  auto newline = [](uint32_t, const std::vector<std::string_view>&,
                    const std::function<Status(std::string_view)>& emit) { return emit("a\nb"); };
  MapOutputCollector c2(spec, 1, dir.path(), 1 << 20, newline);
  REQUIRE_OK(c2.Add("x\t1"));
  auto r = c2.Finish(dir.path() + "/out");
  CHECK_FALSE(r.ok());
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/out"));
}

TEST_CASE("streaming collector with no input writes empty partitions", "[streaming]") {
  TempDir dir;
  KeySpec spec;
  MapOutputCollector c(spec, 3, dir.path() + "/spill", 1 << 20, nullptr);
  auto segments = c.Finish(dir.path() + "/out");
  REQUIRE(segments.ok());
  CHECK(*segments == std::vector<Segment>(3));
  CHECK(std::filesystem::file_size(dir.path() + "/out") == 0);
  auto index = MapOutputCollector::ReadIndex(dir.path() + "/out.index");
  REQUIRE(index.ok());
  CHECK(*index == *segments);
  CHECK_FALSE(c.Add("late").ok());
  CHECK_FALSE(c.Finish(dir.path() + "/out2").ok());
  MapOutputCollector bad(spec, 0, dir.path(), 1 << 20, nullptr);
  CHECK(bad.Add("x").code() == dfs::StatusCode::kInvalidArgument);
}

TEST_CASE("streaming lines without a separator are whole keys", "[streaming]") {
  KeySpec spec;
  std::vector<std::string> lines = {"banana", "apple\tred", "apple", "", "cherry\t", "apple"};
  Partitions got = Collect(spec, 1, 1 << 20, lines);
  // Equal keys keep their input order.
  CHECK(got[0] == std::vector<std::string>{"", "apple\tred", "apple", "apple", "banana", "cherry\t"});
}

TEST_CASE("streaming lines longer than the sort buffer and than a read buffer", "[streaming]") {
  KeySpec spec;
  std::vector<std::string> lines = {"m\t1", std::string(100000, 'z') + "\tbig", "a\t2",
                                    std::string(70000, 'k') + "\tlong key", "n\t3"};
  Partitions got = Collect(spec, 2, 4 << 10, lines, nullptr, 2);
  CHECK(got == Expected(spec, 2, lines));
}

TEST_CASE("streaming keys of 64 KiB and more sort by all their bytes", "[streaming]") {
  std::mt19937_64 rng(11);
  std::vector<std::string> lines;
  for (int i = 0; i < 120; ++i) {
    size_t len = 65530 + rng() % 12;  // either side of the 65535 the index can hold
    std::string key(len, 'x');
    key[len - 1 - rng() % 3] = static_cast<char>('a' + rng() % 3);
    lines.push_back(key + "\t" + std::to_string(i));
  }
  KeySpec spec;
  CHECK(Collect(spec, 2, 64 << 20, lines) == Expected(spec, 2, lines));
  CHECK(Collect(spec, 1, 1 << 20, lines, nullptr, 4) == Expected(spec, 1, lines));

  // Every key a prefix of the next: one key ends at each byte of the sort.
  std::vector<std::string> nested;
  for (int len = 4000; len > 0; --len) nested.push_back(std::string(len, 'x') + "\t" + std::to_string(len));
  std::shuffle(nested.begin(), nested.end(), rng);
  CHECK(Collect(spec, 1, 64 << 20, nested) == Expected(spec, 1, nested));
}

TEST_CASE("streaming index round trip and damage detection", "[streaming]") {
  TempDir dir;
  KeySpec spec;
  const std::string out = dir.path() + "/map.out";
  std::vector<Segment> segments;
  {
    MapOutputCollector c(spec, 4, dir.path(), 1 << 20, nullptr);
    for (int i = 0; i < 100; ++i) REQUIRE_OK(c.Add("key" + std::to_string(i) + "\tv"));
    auto r = c.Finish(out);
    REQUIRE(r.ok());
    segments = *r;
  }
  auto index = MapOutputCollector::ReadIndex(out + ".index");
  REQUIRE(index.ok());
  CHECK(*index == segments);
  uint64_t records = 0;
  for (const Segment& s : segments) records += s.records;
  CHECK(records == 100);

  std::string bytes = ReadAll(out + ".index");
  bytes[20] ^= 1;
  std::ofstream(out + ".index", std::ios::binary | std::ios::trunc) << bytes;
  auto damaged = MapOutputCollector::ReadIndex(out + ".index");
  CHECK(damaged.status().code() == dfs::StatusCode::kCorruption);
  std::ofstream(out + ".index", std::ios::binary | std::ios::trunc) << bytes.substr(0, 30);
  CHECK(MapOutputCollector::ReadIndex(out + ".index").status().code() == dfs::StatusCode::kCorruption);
  CHECK(MapOutputCollector::ReadIndex(dir.path() + "/missing.index").status().code() == dfs::StatusCode::kNotFound);
}

TEST_CASE("streaming merger is stable and reads file ranges", "[streaming]") {
  KeySpec spec;
  std::vector<std::unique_ptr<LineSource>> sources;
  sources.push_back(std::make_unique<MemoryLineSource>(std::string("a\ts0-1\nb\ts0-2\nb\ts0-3\nd\ts0-4\n")));
  sources.push_back(std::make_unique<MemoryLineSource>(std::string("")));
  sources.push_back(std::make_unique<MemoryLineSource>(std::string("a\ts2-1\nb\ts2-2\nc\ts2-3\n")));
  std::string borrowed = "b\ts3-1\nd\ts3-2\n";
  sources.push_back(std::make_unique<MemoryLineSource>(borrowed.data(), borrowed.size()));
  LineMerger merger(spec, std::move(sources));
  std::vector<std::string> got;
  std::string_view line;
  for (;;) {
    auto more = merger.Next(&line);
    REQUIRE(more.ok());
    if (!*more) break;
    got.emplace_back(line);
  }
  CHECK(got == std::vector<std::string>{"a\ts0-1", "a\ts2-1", "b\ts0-2", "b\ts0-3", "b\ts2-2", "b\ts3-1", "c\ts2-3",
                                        "d\ts0-4", "d\ts3-2"});

  // A file range, through a buffer smaller than some lines.
  TempDir dir;
  const std::string path = dir.path() + "/run";
  std::string head = "junk that is not a line";
  std::string body;
  std::vector<std::string> expect;
  for (int i = 0; i < 500; ++i) {
    std::string l = "k" + std::to_string(1000 + i) + "\t" + std::string(i * 37 % 9000, 'v');
    body += l + "\n";
    expect.push_back(l);
  }
  std::ofstream(path, std::ios::binary) << head << body << "trailing junk";
  auto src = FileLineSource::Open(path, head.size(), body.size(), 4096);
  REQUIRE(src.ok());
  std::vector<std::string> read;
  for (;;) {
    auto more = (*src)->Next(&line);
    REQUIRE(more.ok());
    if (!*more) break;
    read.emplace_back(line);
  }
  CHECK(read == expect);
  // A range that stops inside a line is a truncated output.
  (*src)->Reset(head.size(), body.size() - 3);
  Status err;
  for (;;) {
    auto more = (*src)->Next(&line);
    if (!more.ok()) {
      err = more.status();
      break;
    }
    REQUIRE(*more);
  }
  CHECK(err.code() == dfs::StatusCode::kCorruption);
  MemoryLineSource partial(std::string("x\ny"));
  REQUIRE(*partial.Next(&line));
  CHECK(partial.Next(&line).status().code() == dfs::StatusCode::kCorruption);
  CHECK(FileLineSource::Open(dir.path() + "/nope", 0, 10).status().code() != dfs::StatusCode::kOk);
}

// Run with: dfs_tests "[streaming_bench]". DFS_BENCH_RECORDS sets the record count.
TEST_CASE("streaming sort benchmark of word count records", "[.][streaming_bench]") {
  const char* env = std::getenv("DFS_BENCH_RECORDS");
  const size_t n = env ? std::strtoull(env, nullptr, 10) : 200000;
  const size_t buffer = std::getenv("DFS_BENCH_BUFFER_MB")
                            ? std::strtoull(std::getenv("DFS_BENCH_BUFFER_MB"), nullptr, 10) << 20
                            : 256 << 20;
  const uint32_t partitions = std::getenv("DFS_BENCH_PARTITIONS") ? std::atoi(std::getenv("DFS_BENCH_PARTITIONS")) : 1;
  std::mt19937_64 rng(1);
  // One buffer of "word\t1\n" lines, as a mapper writes them.
  std::vector<std::string> vocab;
  for (int i = 0; i < 50000; ++i) vocab.push_back(MakeWord(rng, 50000));
  std::string input;
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  for (size_t i = 0; i < n; ++i) {
    const std::string& w =
        vocab[static_cast<size_t>(std::pow(50000.0, std::uniform_real_distribution<double>(0, 1)(rng))) - 1];
    spans.push_back({static_cast<uint32_t>(input.size()), static_cast<uint32_t>(w.size() + 2)});
    input += w;
    input += "\t1\n";
  }
  TempDir dir;
  KeySpec spec;
  using Clock = std::chrono::steady_clock;
  MapOutputCollector c(spec, partitions, dir.path(), buffer, nullptr);
  auto t0 = Clock::now();
  Status s;
  for (auto [off, len] : spans) {
    s = c.Add(std::string_view(input.data() + off, len));
    if (!s.ok()) break;
  }
  REQUIRE_OK(s);
  auto t1 = Clock::now();
  auto r = c.Finish(dir.path() + "/out");
  auto t2 = Clock::now();
  REQUIRE(r.ok());
  double add = std::chrono::duration<double>(t1 - t0).count();
  double fin = std::chrono::duration<double>(t2 - t1).count();
  WARN("records " << n << " (" << input.size() / n << " bytes avg), buffer " << (buffer >> 20) << " MiB, " << partitions
                  << " partitions, spills " << c.counters().spills << ": Add " << add << " s, Finish " << fin
                  << " s, total " << n / (add + fin) / 1e6 << " M records/s");
}
