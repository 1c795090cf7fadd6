// Merging sorted runs of lines: the reduce side merges the map output segments it
// fetched, and MapOutputCollector merges its spills, with the same LineMerger.
//
// A run is a sequence of lines, each ending with '\n' in its storage, sorted by
// key under one KeySpec. A LineSource yields the lines of one run without their
// '\n'; LineMerger yields the lines of several runs in key order, stable: on equal
// keys the lower source index comes first, and within a source its own order is
// kept. Sources stream, so a merge holds one buffer per source, never whole runs.
//
// Thread-safety: none. Each object is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "streaming/key_spec.h"

namespace dfs::streaming {

class LineSource {
 public:
  virtual ~LineSource() = default;
  // Sets *line to the next line, without its '\n'; the view stays valid until the
  // next call. Returns false at the end of the run. Storage whose last line lacks
  // its '\n' is a Corruption (a truncated map output), not a short line.
  virtual Result<bool> Next(std::string_view* line) = 0;
};

// Lines held in memory.
class MemoryLineSource final : public LineSource {
 public:
  // Owns `data`.
  explicit MemoryLineSource(std::string data);
  // Borrows [data, data + size), which must outlive this source.
  MemoryLineSource(const char* data, size_t size);
  MemoryLineSource(const MemoryLineSource&) = delete;
  MemoryLineSource& operator=(const MemoryLineSource&) = delete;

  Result<bool> Next(std::string_view* line) override;

 private:
  std::string owned_;
  const char* pos_;
  const char* end_;
};

// The lines in bytes [offset, offset + length) of a local file, read sequentially
// through one buffer that grows only for a line longer than it.
class FileLineSource final : public LineSource {
 public:
  static constexpr size_t kDefaultBufferBytes = 1 << 20;

  static Result<std::unique_ptr<FileLineSource>> Open(const std::string& path, uint64_t offset, uint64_t length,
                                                      size_t buffer_bytes = kDefaultBufferBytes);
  ~FileLineSource() override;
  FileLineSource(const FileLineSource&) = delete;
  FileLineSource& operator=(const FileLineSource&) = delete;

  // Moves to another byte range of the same file, keeping the buffer.
  void Reset(uint64_t offset, uint64_t length);

  Result<bool> Next(std::string_view* line) override;

 private:
  FileLineSource(int fd, std::string path, size_t buffer_bytes);
  // Moves the unread bytes to the front of the buffer and reads more after them.
  Status Fill();

  int fd_;
  std::string path_;
  std::unique_ptr<char[]> buf_;  // allocated on first read
  size_t cap_;
  size_t pos_ = 0;  // unread bytes are buf_[pos_, end_)
  size_t end_ = 0;
  uint64_t range_offset_ = 0;  // the range, for error messages
  uint64_t file_pos_ = 0;      // next byte to read from the file
  uint64_t file_end_ = 0;
};

class LineMerger {
 public:
  // Borrows the sources, which must outlive the merger.
  LineMerger(const KeySpec& spec, std::vector<LineSource*> sources);
  // Owns the sources.
  LineMerger(const KeySpec& spec, std::vector<std::unique_ptr<LineSource>> sources);
  ~LineMerger();
  LineMerger(const LineMerger&) = delete;
  LineMerger& operator=(const LineMerger&) = delete;

  // Sets *line to the next line in key order; the view stays valid until the next
  // call. Returns false once every source is exhausted; a source's error ends the merge.
  Result<bool> Next(std::string_view* line);

 private:
  // The current line of one source.
  struct Head {
    uint64_t prefix;  // KeyPrefix(key), used when the order is bytewise
    std::string_view key;
    std::string_view line;
    uint32_t source;
  };

  bool Less(const Head& a, const Head& b) const;
  // Reads the next line of `source` into *head; false at its end.
  Result<bool> Load(uint32_t source, Head* head);
  void SiftDown(size_t i);

  KeySpec spec_;
  bool bytewise_;
  std::vector<std::unique_ptr<LineSource>> owned_;
  std::vector<LineSource*> sources_;
  std::vector<Head> heap_;  // a binary min-heap under Less
  bool started_ = false;
  bool advance_top_ = false;  // heap_[0] was returned last: read its next line first
};

}  // namespace dfs::streaming
