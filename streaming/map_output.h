// MapOutputCollector: the map side of the shuffle. It takes a mapper's output
// lines, gives each a reduce partition by its key, sorts them by (partition, key)
// in one memory buffer, spills each full buffer to a sorted file (running the
// combiner, if any, on every partition of it), and at the end merges the spills
// into ONE file holding partition 0's lines, then partition 1's, ..., each sorted,
// plus an index (out_path + ".index") saying where each partition is.
//
// Sorting is stable: lines with equal keys keep the order the mapper wrote them.
// Every line of the output ends with '\n'; the lines themselves are not changed.
//
// Memory: the sort buffer (sort_buffer_bytes, like Hadoop's io.sort.mb) holds the
// lines and their 16-byte index entries together, with the same room again for
// the sort's scratch; it is allocated once (on transparent huge pages when it is
// large, because every fresh page costs a fault) and reused for every spill. A
// single line too big for it grows it. Add to that a 1 MiB write buffer and,
// while merging, one read buffer per spill (64 KiB to 1 MiB each).
//
// Thread-safety: none. One thread calls Add() for every line, then Finish() once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "streaming/key_spec.h"

namespace dfs::streaming {

// Where one partition's lines are in a map output file.
struct Segment {
  uint64_t offset = 0;
  uint64_t length = 0;  // bytes, every line's '\n' included; 0 for an empty partition
  uint64_t records = 0;
  bool operator==(const Segment&) const = default;
};

struct MapOutputCounters {
  uint64_t records_in = 0;              // lines given to Add (Hadoop "Map output records")
  uint64_t bytes_in = 0;                // their bytes, '\n' included ("Map output bytes")
  uint64_t records_out = 0;             // lines in the final file, after combining
  uint64_t bytes_out = 0;               // size of the final file ("Map output materialized bytes")
  uint64_t spills = 0;                  // sorted files written before the final merge
  uint64_t spilled_records = 0;         // lines written to those files (the final file not included)
  uint64_t combine_input_records = 0;   // lines handed to the combiner
  uint64_t combine_output_records = 0;  // lines it emitted
};

class SortedFileWriter;  // map_output.cc

class MapOutputCollector {
 public:
  // Called with the sorted lines (no '\n') of one partition of one sorted run; it
  // emits the lines that replace them, e.g. one "word\tsum" per word. It should
  // emit in key order, as Hadoop assumes; if it does not, its output is sorted
  // again (stably). Emitted lines stay in `partition` whatever their key, as in
  // Hadoop, and must not contain '\n'. The views die when it returns.
  using Combiner = std::function<Status(uint32_t partition, const std::vector<std::string_view>& sorted_lines,
                                        const std::function<Status(std::string_view line)>& emit)>;

  // Spill files go in spill_dir (created if missing) and are deleted by Finish or
  // by the destructor. num_partitions is 1 to 65536 (a bad value fails Add).
  // combiner may be empty.
  MapOutputCollector(const KeySpec& spec, uint32_t num_partitions, std::string spill_dir, size_t sort_buffer_bytes,
                     Combiner combiner);
  ~MapOutputCollector();
  MapOutputCollector(const MapOutputCollector&) = delete;
  MapOutputCollector& operator=(const MapOutputCollector&) = delete;

  // Takes one mapper output line, without its '\n' (it must contain none). May
  // sort and spill; after a failed spill every call fails with the same Status.
  Status Add(std::string_view line);

  // Merges everything into out_path and writes its index to IndexPath(out_path)
  // (written last, through a rename, so an index means a complete output).
  // Returns one Segment per partition. Call once.
  Result<std::vector<Segment>> Finish(const std::string& out_path);

  static std::string IndexPath(const std::string& out_path) { return out_path + ".index"; }
  // Reads an index written by Finish (binary, little-endian, XXH3-checksummed;
  // the layout is documented in map_output.cc); Corruption if it is damaged.
  static Result<std::vector<Segment>> ReadIndex(const std::string& index_path);

  const MapOutputCounters& counters() const { return counters_; }

  // How many sorted files one merge pass reads at once (Hadoop's
  // mapreduce.task.io.sort.factor); more spills than that are merged in rounds.
  // Default 64, at least 2.
  void set_merge_factor(uint32_t factor) { merge_factor_ = factor < 2 ? 2 : factor; }

 private:
  struct Spill {
    std::string path;
    std::vector<Segment> segments;  // one per partition
  };

  Status AllocateArena(size_t bytes);
  void FreeArena();
  // Sorts the lines in the buffer, then fills part_begin_.
  void SortRun();
  // Writes the sorted run to a new spill file and empties the buffer.
  Status SortAndSpill();
  void ResetRun();
  // Writes partition p of the sorted run (combined, with a combiner) to writer_.
  Status WriteRunPartition(uint32_t p, Segment* segment);
  // Runs the combiner on partition p of the sorted run; leaves its output, sorted,
  // in combine_buf_ (lines ending in '\n') with combine_records_ lines.
  Status Combine(uint32_t p);
  // Merges `inputs` (and the sorted run in memory when with_run) into `path`.
  Result<std::vector<Segment>> MergeRuns(const std::vector<Spill>& inputs, bool with_run, const std::string& path);
  std::string NewSpillPath();
  void RemoveSpills();

  const KeySpec spec_;
  const uint32_t num_partitions_;
  const std::string spill_dir_;
  const size_t sort_buffer_bytes_;
  const Combiner combiner_;
  Status error_;  // sticky: a bad construction or a failed spill fails every later call
  uint32_t merge_factor_ = 64;
  bool finished_ = false;

  // The sort buffer: index entries grow up from arena_, lines ("line\n") grow down
  // from arena_ + arena_bytes_; the gap between is the sort's scratch space.
  char* arena_ = nullptr;
  size_t arena_bytes_ = 0;
  void* arena_map_ = nullptr;  // the mmap'ed region holding arena_; null when from operator new[]
  size_t arena_map_bytes_ = 0;
  size_t num_entries_ = 0;
  size_t data_low_ = 0;                     // lines occupy [data_low_, arena_bytes_)
  std::vector<uint32_t> partition_counts_;  // entries per partition in the run
  std::vector<size_t> part_begin_;          // partition p is entries [part_begin_[p], part_begin_[p + 1])

  std::vector<std::string_view> combine_input_;
  std::string combine_buf_;
  std::string combine_sorted_;  // scratch for re-sorting combiner output
  struct CombinedLine {
    uint64_t offset;  // in combine_buf_
    uint64_t length;  // without the '\n'
    uint64_t key_length;
  };
  std::vector<CombinedLine> combine_index_;
  uint64_t combine_records_ = 0;

  std::unique_ptr<SortedFileWriter> writer_;
  std::vector<Spill> spills_;
  uint64_t spill_seq_ = 0;
  uint64_t instance_id_;
  MapOutputCounters counters_;
};

}  // namespace dfs::streaming
