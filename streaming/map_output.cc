#include "streaming/map_output.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "streaming/merge.h"

namespace dfs::streaming {

// The index file (out_path + ".index"), every integer little-endian:
//   magic     8 bytes   "DFSMIDX1"
//   count     uint32    P, the number of partitions
//   reserved  uint32    0
//   P times   uint64 offset, uint64 length, uint64 records   (24 bytes each)
//   checksum  uint64    XXH3_64bits of every byte before it
constexpr char kIndexMagic[8] = {'D', 'F', 'S', 'M', 'I', 'D', 'X', '1'};
constexpr size_t kIndexHeaderBytes = 16;
constexpr size_t kIndexEntryBytes = 24;
constexpr size_t kIndexTrailerBytes = 8;

namespace {

static_assert(std::endian::native == std::endian::little, "sort keys and the index assume a little-endian host");

constexpr uint32_t kMaxPartitions = 1u << 16;
// Entries hold 32-bit offsets into the buffer.
constexpr size_t kMaxArenaBytes = (size_t{1} << 32) - (size_t{4} << 20);
constexpr size_t kMaxLineBytes = size_t{1} << 31;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr uint16_t kKeyLenSaturated = 0xFFFF;
// Runs this short are sorted by insertion, not by another radix pass.
constexpr size_t kInsertionSortMax = 32;
// Reading sorted lines visits the buffer in random order: fetching this many
// entries ahead overlaps the cache misses (3x faster on 10M short lines).
constexpr size_t kPrefetchAhead = 16;

// One line of the sort buffer, as its index holds it.
struct Entry {
  uint64_t prefix;  // 8 bytes of the key, big-endian (KeyPrefix); which 8 depends on the sort's progress
  uint32_t offset;  // of the line in the buffer
  uint16_t partition;
  uint16_t key_len;  // kKeyLenSaturated: 65535 or more, found again from the line
};
static_assert(sizeof(Entry) == 16);
// Each line costs its entry plus an entry's worth of sort scratch.
constexpr size_t kBytesPerEntry = 2 * sizeof(Entry);

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// How many of the first n bytes of a and b are equal.
size_t CommonPrefix(const char* a, const char* b, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) return i + (__builtin_ctzll(x ^ y) >> 3);  // little-endian: the lowest byte comes first
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Sorts a run's entries. The fast path (bytewise order) is an MSD radix sort on
// the 8-byte key prefixes held in the entries: each pass scatters stably by one
// byte, keys that have ended going first; entries whose 8 bytes all tie skip any
// further bytes they share and are re-keyed with the next 8 bytes of their keys.
// Short runs use insertion sort. Stable throughout.
class RunSorter {
 public:
  RunSorter(const char* arena, size_t arena_bytes, const KeySpec& spec)
      : arena_(arena), arena_end_(arena + arena_bytes), spec_(spec) {}

  std::string_view Line(const Entry& e) const {
    const char* p = arena_ + e.offset;
    const char* nl = static_cast<const char*>(std::memchr(p + e.key_len, '\n', arena_end_ - p - e.key_len));
    return std::string_view(p, nl - p);
  }
  void Prefetch(const Entry& e) const { __builtin_prefetch(arena_ + e.offset); }

  std::string_view Key(const Entry& e) const {
    if (e.key_len != kKeyLenSaturated) return std::string_view(arena_ + e.offset, e.key_len);
    return spec_.SplitKey(Line(e));
  }

  // Sorts a[0, n) with tmp[0, n) as scratch; the keys' first `base` bytes all tie.
  void RadixSort(Entry* a, Entry* tmp, size_t n) const { RadixSort(a, tmp, n, 0, 0, false); }

 private:
  // Sorts the n entries at `in` into `in` (into `out` when to_out), using the other
  // as scratch. Every key's first `base` bytes and then `depth` more (the top of
  // `prefix`) tie. Each pass scatters by the next byte, bucket 0 taking the keys
  // that end before it: those are all equal, so they are done.
  void RadixSort(Entry* in, Entry* out, size_t n, unsigned depth, size_t base, bool to_out) const {
    for (;;) {
      if (n <= kInsertionSortMax) {
        InsertionSort(in, n, base);
        if (to_out) std::memcpy(out, in, n * sizeof(Entry));
        return;
      }
      if (depth == 8) {
        // Keys ending exactly here first; the others go on with their next 8 bytes.
        size_t ended = 0;
        for (size_t i = 0; i < n; ++i) ended += KeyLen(in[i]) - base == 8;
        if (ended == n) {
          if (to_out) std::memcpy(out, in, n * sizeof(Entry));
          return;
        }
        if (ended > 0) {
          size_t e = 0, rest = ended;
          for (size_t i = 0; i < n; ++i) out[KeyLen(in[i]) - base == 8 ? e++ : rest++] = in[i];
          if (!to_out) std::memcpy(in, out, ended * sizeof(Entry));
          // Continue on the rest, which now sits in `out`.
          Entry* next_in = out + ended;
          out = in + ended;
          in = next_in;
          n -= ended;
          to_out = !to_out;
        }
        // Skip the bytes they all share next (URLs, long ids), then re-key.
        base += 8;
        const std::string_view first_key = Key(in[0]);
        size_t shared = first_key.size() - base;
        for (size_t i = 1; i < n && shared > 0; ++i) {
          const std::string_view k = Key(in[i]);
          shared = CommonPrefix(first_key.data() + base, k.data() + base, std::min(shared, k.size() - base));
        }
        base += shared;
        for (size_t i = 0; i < n; ++i) {
          if (i + kPrefetchAhead < n) Prefetch(in[i + kPrefetchAhead]);
          in[i].prefix = KeyPrefix(Key(in[i]).substr(base));
        }
        depth = 0;
        continue;
      }
      const unsigned shift = 56 - 8 * depth;
      const size_t end_len = base + depth;  // keys this long or shorter have ended
      auto digit = [&](const Entry& e) -> unsigned {
        return KeyLen(e) <= end_len ? 0 : 1 + static_cast<unsigned>((e.prefix >> shift) & 0xFF);
      };
      uint32_t count[257] = {};
      for (size_t i = 0; i < n; ++i) ++count[digit(in[i])];
      const unsigned first = digit(in[0]);
      if (count[first] == n) {  // one bucket: nothing to move
        if (first == 0) {
          if (to_out) std::memcpy(out, in, n * sizeof(Entry));
          return;
        }
        ++depth;
        continue;
      }
      uint32_t pos[257];
      uint32_t sum = 0;
      for (int b = 0; b < 257; ++b) {
        pos[b] = sum;
        sum += count[b];
      }
      for (size_t i = 0; i < n; ++i) out[pos[digit(in[i])]++] = in[i];
      // The buckets now sit in `out`; each is sorted back where the result belongs.
      // The largest is done by this loop, not recursion, so the stack stays
      // O(log n) deep whatever the keys.
      int largest = 0;
      for (int b = 1; b < 257; ++b) {
        if (count[b] > count[largest]) largest = b;
      }
      size_t start = 0;
      size_t largest_start = 0;
      for (int b = 0; b < 257; ++b) {
        const size_t c = count[b];
        if (b == largest) {
          largest_start = start;
        } else if (c > 1 && b > 0) {
          RadixSort(out + start, in + start, c, depth + 1, base, !to_out);
        } else if (c > 0 && !to_out) {
          std::memcpy(in + start, out + start, c * sizeof(Entry));
        }
        start += c;
      }
      Entry* next_in = out + largest_start;
      out = in + largest_start;
      in = next_in;
      n = count[largest];
      to_out = !to_out;
      if (largest == 0) {  // ended keys are all equal: done
        if (to_out) std::memcpy(out, in, n * sizeof(Entry));
        return;
      }
      ++depth;
    }
  }

 public:
  // Any KeySpec order, by (partition, key); equal keys keep their insertion order,
  // which is descending offset because lines fill the buffer downwards.
  void ComparisonSort(Entry* a, size_t n) const {
    std::sort(a, a + n, [this](const Entry& x, const Entry& y) {
      if (x.partition != y.partition) return x.partition < y.partition;
      int c = spec_.Compare(Key(x), Key(y));
      return c != 0 ? c < 0 : x.offset > y.offset;
    });
  }

 private:
  size_t KeyLen(const Entry& e) const { return e.key_len != kKeyLenSaturated ? e.key_len : Key(e).size(); }

  // Whether x sorts before y; both have their keys' first `base` bytes equal and
  // `prefix` holding the next 8.
  bool Less(const Entry& x, const Entry& y, size_t base) const {
    if (x.prefix != y.prefix) return x.prefix < y.prefix;
    std::string_view kx = Key(x);
    std::string_view ky = Key(y);
    // A key ending within the tied 8 bytes is a prefix of the other (its
    // zero padding matched): the shorter one first.
    if (kx.size() <= base + 8 || ky.size() <= base + 8) return kx.size() < ky.size();
    return kx.substr(base + 8) < ky.substr(base + 8);
  }

  void InsertionSort(Entry* a, size_t n, size_t base) const {
    for (size_t i = 1; i < n; ++i) {
      Entry x = a[i];
      size_t j = i;
      for (; j > 0 && Less(x, a[j - 1], base); --j) a[j] = a[j - 1];
      a[j] = x;
    }
  }

  const char* arena_;
  const char* arena_end_;
  const KeySpec& spec_;
};

// The lines of one partition of the sorted run still in the sort buffer.
class RunLineSource final : public LineSource {
 public:
  RunLineSource(const RunSorter& sorter, const Entry* begin, const Entry* end)
      : sorter_(sorter), cur_(begin), end_(end) {}
  Result<bool> Next(std::string_view* line) override {
    if (cur_ == end_) return false;
    if (end_ - cur_ > static_cast<ptrdiff_t>(kPrefetchAhead)) sorter_.Prefetch(cur_[kPrefetchAhead]);
    *line = sorter_.Line(*cur_++);
    return true;
  }

 private:
  const RunSorter& sorter_;
  const Entry* cur_;
  const Entry* end_;
};

std::atomic<uint64_t> g_next_instance{0};

}  // namespace

// A file written sequentially through one reusable buffer.
class SortedFileWriter {
 public:
  static constexpr size_t kBufferBytes = 1 << 20;

  SortedFileWriter() : buf_(new char[kBufferBytes]) {}
  ~SortedFileWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Open(const std::string& path) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::FromErrno("create map output file " + path, errno);
    path_ = path;
    used_ = 0;
    offset_ = 0;
    return Status::OK();
  }

  // Bytes appended since Open.
  uint64_t offset() const { return offset_; }

  Status Append(const char* data, size_t n) {
    offset_ += n;
    if (used_ + n <= kBufferBytes) {
      std::memcpy(buf_.get() + used_, data, n);
      used_ += n;
      return Status::OK();
    }
    DFS_RETURN_IF_ERROR(Flush());
    if (n >= kBufferBytes) return WriteAll(data, n);
    std::memcpy(buf_.get(), data, n);
    used_ = n;
    return Status::OK();
  }

  // Appends line and a '\n'.
  Status AppendLine(std::string_view line) {
    if (used_ + line.size() < kBufferBytes) {
      std::memcpy(buf_.get() + used_, line.data(), line.size());
      used_ += line.size();
      buf_[used_++] = '\n';
      offset_ += line.size() + 1;
      return Status::OK();
    }
    DFS_RETURN_IF_ERROR(Append(line.data(), line.size()));
    return Append("\n", 1);
  }

  Status Close() {
    Status s = Flush();
    if (::close(fd_) != 0 && s.ok()) s = Status::FromErrno("close map output file " + path_, errno);
    fd_ = -1;
    return s;
  }

 private:
  Status Flush() {
    Status s = WriteAll(buf_.get(), used_);
    used_ = 0;
    return s;
  }

  Status WriteAll(const char* data, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, data, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("write map output file " + path_, errno);
      }
      data += w;
      n -= static_cast<size_t>(w);
    }
    return Status::OK();
  }

  std::unique_ptr<char[]> buf_;
  int fd_ = -1;
  std::string path_;
  size_t used_ = 0;
  uint64_t offset_ = 0;
};

MapOutputCollector::MapOutputCollector(const KeySpec& spec, uint32_t num_partitions, std::string spill_dir,
                                       size_t sort_buffer_bytes, Combiner combiner)
    : spec_(spec),
      num_partitions_(num_partitions),
      spill_dir_(std::move(spill_dir)),
      sort_buffer_bytes_(std::min(sort_buffer_bytes, kMaxArenaBytes)),
      combiner_(std::move(combiner)),
      writer_(std::make_unique<SortedFileWriter>()),
      instance_id_(g_next_instance.fetch_add(1)) {
  if (num_partitions_ == 0 || num_partitions_ > kMaxPartitions) {
    error_ = Status::InvalidArgument("a map output needs 1 to " + std::to_string(kMaxPartitions) +
                                     " partitions (one per reduce), not " + std::to_string(num_partitions_));
    return;
  }
  partition_counts_.assign(num_partitions_, 0);
  part_begin_.assign(num_partitions_ + 1, 0);
}

MapOutputCollector::~MapOutputCollector() {
  RemoveSpills();
  FreeArena();
}

Status MapOutputCollector::AllocateArena(size_t bytes) {
  FreeArena();
  if (bytes >= kHugePage) {
    // Faulting in fresh pages is slow here; 2 MiB pages make 512 times fewer faults.
    size_t usable = RoundUp(bytes, kHugePage);
    size_t mapped = usable + kHugePage;  // room to align the start
    void* map = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
      return Status::FromErrno(
          "allocate a map sort buffer of " + std::to_string(bytes) + " bytes (lower the sort buffer size)", errno);
    }
    char* aligned = reinterpret_cast<char*>(RoundUp(reinterpret_cast<uintptr_t>(map), kHugePage));
    (void)::madvise(aligned, usable, MADV_HUGEPAGE);
    arena_map_ = map;
    arena_map_bytes_ = mapped;
    arena_ = aligned;
  } else {
    arena_ = new (std::nothrow) char[bytes];
    if (arena_ == nullptr)
      return Status::NoSpace("cannot allocate a map sort buffer of " + std::to_string(bytes) + " bytes");
  }
  arena_bytes_ = bytes;
  ResetRun();
  return Status::OK();
}

void MapOutputCollector::FreeArena() {
  if (arena_map_ != nullptr) {
    ::munmap(arena_map_, arena_map_bytes_);
  } else {
    delete[] arena_;
  }
  arena_ = nullptr;
  arena_map_ = nullptr;
  arena_bytes_ = arena_map_bytes_ = 0;
  num_entries_ = data_low_ = 0;
}

void MapOutputCollector::ResetRun() {
  num_entries_ = 0;
  data_low_ = arena_bytes_;
  std::fill(partition_counts_.begin(), partition_counts_.end(), 0);
}

Status MapOutputCollector::Add(std::string_view line) {
  const size_t need = line.size() + 1;
  if (data_low_ < need || data_low_ - need < (num_entries_ + 1) * kBytesPerEntry) {
    DFS_RETURN_IF_ERROR(error_);
    if (finished_) {
      return Status::Internal("MapOutputCollector::Add was called after Finish; this is a bug in the task runner");
    }
    if (line.size() >= kMaxLineBytes) {
      return Status::InvalidArgument("a mapper output line of " + std::to_string(line.size()) +
                                     " bytes is longer than the limit of 2 GiB; write shorter records");
    }
    if (num_entries_ > 0) {
      error_ = SortAndSpill();
      if (!error_.ok()) return error_;
    }
    if (arena_bytes_ < need + kBytesPerEntry) {
      // A line too big for the configured buffer gets a buffer of its own size.
      DFS_RETURN_IF_ERROR(AllocateArena(std::max(sort_buffer_bytes_, RoundUp(need + kBytesPerEntry, 4096))));
    }
  }
  const std::string_view key = spec_.SplitKey(line);
  const uint32_t partition = spec_.Partition(key, num_partitions_);
  data_low_ -= need;
  char* dst = arena_ + data_low_;
  std::memcpy(dst, line.data(), line.size());
  dst[line.size()] = '\n';
  Entry& e = reinterpret_cast<Entry*>(arena_)[num_entries_++];
  e.prefix = KeyPrefix(key);
  e.offset = static_cast<uint32_t>(data_low_);
  e.partition = static_cast<uint16_t>(partition);
  e.key_len = static_cast<uint16_t>(std::min<size_t>(key.size(), kKeyLenSaturated));
  ++partition_counts_[partition];
  ++counters_.records_in;
  counters_.bytes_in += need;
  return Status::OK();
}

void MapOutputCollector::SortRun() {
  const size_t n = num_entries_;
  part_begin_[0] = 0;
  for (uint32_t p = 0; p < num_partitions_; ++p) part_begin_[p + 1] = part_begin_[p] + partition_counts_[p];
  if (n < 2) return;
  Entry* a = reinterpret_cast<Entry*>(arena_);
  Entry* tmp = a + n;  // the free gap holds at least n more entries
  RunSorter sorter(arena_, arena_bytes_, spec_);
  if (!spec_.bytewise()) {
    sorter.ComparisonSort(a, n);
    return;
  }
  if (num_partitions_ > 1) {
    std::vector<size_t> pos(part_begin_.begin(), part_begin_.end() - 1);
    for (size_t i = 0; i < n; ++i) tmp[pos[a[i].partition]++] = a[i];
    std::memcpy(a, tmp, n * sizeof(Entry));
  }
  for (uint32_t p = 0; p < num_partitions_; ++p) {
    size_t b = part_begin_[p];
    size_t count = part_begin_[p + 1] - b;
    if (count > 1) sorter.RadixSort(a + b, tmp + b, count);
  }
}

Status MapOutputCollector::Combine(uint32_t p) {
  RunSorter sorter(arena_, arena_bytes_, spec_);
  const Entry* entries = reinterpret_cast<const Entry*>(arena_);
  combine_input_.clear();
  for (size_t i = part_begin_[p]; i < part_begin_[p + 1]; ++i) {
    if (i + kPrefetchAhead < part_begin_[p + 1]) sorter.Prefetch(entries[i + kPrefetchAhead]);
    combine_input_.push_back(sorter.Line(entries[i]));
  }
  combine_buf_.clear();
  combine_index_.clear();
  bool sorted = true;
  auto key_of = [this](const CombinedLine& c) {
    return std::string_view(combine_buf_.data() + c.offset, c.key_length);
  };
  auto emit = [&](std::string_view line) -> Status {
    if (std::memchr(line.data(), '\n', line.size()) != nullptr) {
      return Status::InvalidArgument("the combiner emitted a line with a newline inside it (partition " +
                                     std::to_string(p) + "); emit one record per call, without '\\n'");
    }
    std::string_view key = spec_.SplitKey(line);
    if (sorted && !combine_index_.empty() && spec_.Compare(key, key_of(combine_index_.back())) < 0) sorted = false;
    combine_index_.push_back({combine_buf_.size(), line.size(), key.size()});
    combine_buf_.append(line);
    combine_buf_.push_back('\n');
    return Status::OK();
  };
  Status s = combiner_(p, combine_input_, emit);
  if (!s.ok()) return s.Prepend("combiner on partition " + std::to_string(p));
  counters_.combine_input_records += combine_input_.size();
  if (!sorted) {
    std::stable_sort(combine_index_.begin(), combine_index_.end(), [&](const CombinedLine& x, const CombinedLine& y) {
      return spec_.Compare(key_of(x), key_of(y)) < 0;
    });
    combine_sorted_.clear();
    for (const CombinedLine& c : combine_index_) combine_sorted_.append(combine_buf_, c.offset, c.length + 1);
    combine_buf_.swap(combine_sorted_);
  }
  combine_records_ = combine_index_.size();
  counters_.combine_output_records += combine_records_;
  return Status::OK();
}

Status MapOutputCollector::WriteRunPartition(uint32_t p, Segment* segment) {
  segment->offset = writer_->offset();
  const size_t begin = part_begin_[p];
  const size_t end = part_begin_[p + 1];
  if (begin == end) {
    segment->length = segment->records = 0;
    return Status::OK();
  }
  if (combiner_) {
    DFS_RETURN_IF_ERROR(Combine(p));
    DFS_RETURN_IF_ERROR(writer_->Append(combine_buf_.data(), combine_buf_.size()));
    segment->records = combine_records_;
  } else {
    RunSorter sorter(arena_, arena_bytes_, spec_);
    const Entry* entries = reinterpret_cast<const Entry*>(arena_);
    for (size_t i = begin; i < end; ++i) {
      if (i + kPrefetchAhead < end) sorter.Prefetch(entries[i + kPrefetchAhead]);
      std::string_view line = sorter.Line(entries[i]);
      DFS_RETURN_IF_ERROR(writer_->Append(line.data(), line.size() + 1));  // the '\n' follows in the buffer
    }
    segment->records = end - begin;
  }
  segment->length = writer_->offset() - segment->offset;
  return Status::OK();
}

std::string MapOutputCollector::NewSpillPath() {
  return spill_dir_ + "/map-spill-" + std::to_string(::getpid()) + "-" + std::to_string(instance_id_) + "-" +
         std::to_string(spill_seq_++) + ".out";
}

Status MapOutputCollector::SortAndSpill() {
  if (spills_.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(spill_dir_, ec);
    if (ec) return Status::IOError("create the map spill directory " + spill_dir_ + ": " + ec.message());
  }
  SortRun();
  // Listed before it is written, so that a failure still removes it.
  spills_.push_back({NewSpillPath(), std::vector<Segment>(num_partitions_)});
  Spill& spill = spills_.back();
  DFS_RETURN_IF_ERROR(writer_->Open(spill.path));
  uint64_t records = 0;
  for (uint32_t p = 0; p < num_partitions_; ++p) {
    DFS_RETURN_IF_ERROR(WriteRunPartition(p, &spill.segments[p]));
    records += spill.segments[p].records;
  }
  DFS_RETURN_IF_ERROR(writer_->Close());
  ++counters_.spills;
  counters_.spilled_records += records;
  ResetRun();
  return Status::OK();
}

Result<std::vector<Segment>> MapOutputCollector::MergeRuns(const std::vector<Spill>& inputs, bool with_run,
                                                           const std::string& path) {
  const size_t read_buffer = std::clamp<size_t>(sort_buffer_bytes_ / (inputs.size() + 1), 64 << 10, 1 << 20);
  std::vector<std::unique_ptr<FileLineSource>> files;
  for (const Spill& in : inputs) {
    DFS_ASSIGN_OR_RETURN(auto f, FileLineSource::Open(in.path, 0, 0, read_buffer));
    files.push_back(std::move(f));
  }
  RunSorter sorter(arena_, arena_bytes_, spec_);
  const Entry* entries = reinterpret_cast<const Entry*>(arena_);
  DFS_RETURN_IF_ERROR(writer_->Open(path));
  std::vector<Segment> out(num_partitions_);
  std::vector<LineSource*> active;
  for (uint32_t p = 0; p < num_partitions_; ++p) {
    active.clear();
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Segment& seg = inputs[i].segments[p];
      if (seg.length == 0) continue;
      files[i]->Reset(seg.offset, seg.length);
      active.push_back(files[i].get());
    }
    // The run in memory is the newest data, so it goes last: equal keys stay in input order.
    std::optional<MemoryLineSource> combined;
    std::optional<RunLineSource> run;
    if (with_run && part_begin_[p] < part_begin_[p + 1]) {
      if (combiner_) {
        DFS_RETURN_IF_ERROR(Combine(p));
        active.push_back(&combined.emplace(combine_buf_.data(), combine_buf_.size()));
      } else {
        active.push_back(&run.emplace(sorter, entries + part_begin_[p], entries + part_begin_[p + 1]));
      }
    }
    out[p].offset = writer_->offset();
    LineMerger merger(spec_, active);
    std::string_view line;
    for (;;) {
      DFS_ASSIGN_OR_RETURN(bool more, merger.Next(&line));
      if (!more) break;
      DFS_RETURN_IF_ERROR(writer_->AppendLine(line));
      ++out[p].records;
    }
    out[p].length = writer_->offset() - out[p].offset;
  }
  DFS_RETURN_IF_ERROR(writer_->Close());
  return out;
}

void MapOutputCollector::RemoveSpills() {
  for (const Spill& s : spills_) ::unlink(s.path.c_str());
  spills_.clear();
}

namespace {

Status WriteIndex(const std::string& path, const std::vector<Segment>& segments) {
  std::string buf(kIndexMagic, sizeof(kIndexMagic));
  auto put32 = [&](uint32_t v) { buf.append(reinterpret_cast<const char*>(&v), 4); };
  auto put64 = [&](uint64_t v) { buf.append(reinterpret_cast<const char*>(&v), 8); };
  put32(static_cast<uint32_t>(segments.size()));
  put32(0);
  for (const Segment& s : segments) {
    put64(s.offset);
    put64(s.length);
    put64(s.records);
  }
  put64(XXH3_64bits(buf.data(), buf.size()));
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("create map output index " + tmp, errno);
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t w = ::write(fd, buf.data() + done, buf.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      Status s = Status::FromErrno("write map output index " + tmp, errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(w);
  }
  if (::close(fd) != 0) return Status::FromErrno("close map output index " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno("rename " + tmp + " to " + path, errno);
  return Status::OK();
}

}  // namespace

Result<std::vector<Segment>> MapOutputCollector::Finish(const std::string& out_path) {
  DFS_RETURN_IF_ERROR(error_);
  if (finished_) {
    return Status::Internal("MapOutputCollector::Finish was called twice; this is a bug in the task runner");
  }
  finished_ = true;
  SortRun();
  Result<std::vector<Segment>> merged = Status::Internal("unset");
  if (spills_.empty()) {
    // Everything fit in memory: write the sorted run straight out.
    std::vector<Segment> segments(num_partitions_);
    Status s = writer_->Open(out_path);
    for (uint32_t p = 0; s.ok() && p < num_partitions_; ++p) s = WriteRunPartition(p, &segments[p]);
    if (s.ok()) s = writer_->Close();
    merged = s.ok() ? Result<std::vector<Segment>>(std::move(segments)) : Result<std::vector<Segment>>(s);
  } else {
    // Too many files for one pass: merge just enough of the oldest ones first that
    // the last pass reads merge_factor_ - 1 files and the run in memory.
    while (spills_.size() > merge_factor_ - 1) {
      size_t k = std::min<size_t>(merge_factor_, spills_.size() - (merge_factor_ - 1) + 1);
      std::vector<Spill> group(spills_.begin(), spills_.begin() + k);
      Spill combined{NewSpillPath(), {}};
      Result<std::vector<Segment>> r = MergeRuns(group, false, combined.path);
      if (!r.ok()) {
        ::unlink(combined.path.c_str());
        return r.status();
      }
      combined.segments = std::move(r).value();
      for (const Segment& s : combined.segments) counters_.spilled_records += s.records;
      for (const Spill& s : group) ::unlink(s.path.c_str());
      spills_.erase(spills_.begin(), spills_.begin() + k);
      spills_.insert(spills_.begin(), std::move(combined));
    }
    merged = MergeRuns(spills_, true, out_path);
    RemoveSpills();
  }
  FreeArena();
  if (!merged.ok()) {
    ::unlink(out_path.c_str());
    return merged.status();
  }
  DFS_RETURN_IF_ERROR(WriteIndex(IndexPath(out_path), merged.value()));
  for (const Segment& s : merged.value()) {
    counters_.records_out += s.records;
    counters_.bytes_out += s.length;
  }
  return merged;
}

Result<std::vector<Segment>> MapOutputCollector::ReadIndex(const std::string& index_path) {
  int fd = ::open(index_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("map output index " + index_path + " does not exist");
    return Status::FromErrno("open map output index " + index_path, errno);
  }
  std::string buf;
  char chunk[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Status::FromErrno("read map output index " + index_path, errno);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    buf.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption("map output index " + index_path + " is damaged: " + why +
                              "; the map task must run again");
  };
  if (buf.size() < kIndexHeaderBytes + kIndexTrailerBytes || std::memcmp(buf.data(), kIndexMagic, 8) != 0) {
    return corrupt("it does not start with the DFSMIDX1 header");
  }
  uint32_t count;
  std::memcpy(&count, buf.data() + 8, 4);
  if (buf.size() != kIndexHeaderBytes + size_t{count} * kIndexEntryBytes + kIndexTrailerBytes) {
    return corrupt("it is " + std::to_string(buf.size()) + " bytes long but says it holds " + std::to_string(count) +
                   " partitions");
  }
  uint64_t checksum;
  std::memcpy(&checksum, buf.data() + buf.size() - 8, 8);
  if (checksum != XXH3_64bits(buf.data(), buf.size() - 8)) return corrupt("its checksum does not match");
  std::vector<Segment> segments(count);
  const char* p = buf.data() + kIndexHeaderBytes;
  for (Segment& s : segments) {
    std::memcpy(&s.offset, p, 8);
    std::memcpy(&s.length, p + 8, 8);
    std::memcpy(&s.records, p + 16, 8);
    p += kIndexEntryBytes;
  }
  return segments;
}

}  // namespace dfs::streaming
