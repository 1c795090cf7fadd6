#include "streaming/merge.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace dfs::streaming {

MemoryLineSource::MemoryLineSource(std::string data)
    : owned_(std::move(data)), pos_(owned_.data()), end_(owned_.data() + owned_.size()) {}

MemoryLineSource::MemoryLineSource(const char* data, size_t size) : pos_(data), end_(data + size) {}

Result<bool> MemoryLineSource::Next(std::string_view* line) {
  if (pos_ == end_) return false;
  const char* nl = static_cast<const char*>(std::memchr(pos_, '\n', end_ - pos_));
  if (nl == nullptr) {
    return Status::Corruption("a sorted run held in memory ends with " + std::to_string(end_ - pos_) +
                              " bytes that are not a complete line (no final newline); the run was truncated");
  }
  *line = std::string_view(pos_, nl - pos_);
  pos_ = nl + 1;
  return true;
}

Result<std::unique_ptr<FileLineSource>> FileLineSource::Open(const std::string& path, uint64_t offset, uint64_t length,
                                                             size_t buffer_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open sorted run " + path, errno);
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<FileLineSource> source(new FileLineSource(fd, path, buffer_bytes));
  source->Reset(offset, length);
  return source;
}

FileLineSource::FileLineSource(int fd, std::string path, size_t buffer_bytes)
    : fd_(fd), path_(std::move(path)), cap_(std::max<size_t>(buffer_bytes, 4096)) {}

FileLineSource::~FileLineSource() { ::close(fd_); }

void FileLineSource::Reset(uint64_t offset, uint64_t length) {
  pos_ = end_ = 0;
  range_offset_ = offset;
  file_pos_ = offset;
  file_end_ = offset + length;
}

Status FileLineSource::Fill() {
  if (!buf_) buf_.reset(new char[cap_]);
  size_t unread = end_ - pos_;
  if (pos_ > 0) {
    std::memmove(buf_.get(), buf_.get() + pos_, unread);
    pos_ = 0;
    end_ = unread;
  }
  if (end_ == cap_) {  // one line fills the buffer: make room for the rest of it
    std::unique_ptr<char[]> bigger(new char[cap_ * 2]);
    std::memcpy(bigger.get(), buf_.get(), end_);
    buf_ = std::move(bigger);
    cap_ *= 2;
  }
  size_t want = static_cast<size_t>(std::min<uint64_t>(cap_ - end_, file_end_ - file_pos_));
  ssize_t n;
  do {
    n = ::pread(fd_, buf_.get() + end_, want, static_cast<off_t>(file_pos_));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::FromErrno("read sorted run " + path_, errno);
  if (n == 0) {
    return Status::Corruption("sorted run " + path_ + " ends at byte " + std::to_string(file_pos_) +
                              ", inside its segment of bytes [" + std::to_string(range_offset_) + ", " +
                              std::to_string(file_end_) + "); the file was truncated");
  }
  end_ += static_cast<size_t>(n);
  file_pos_ += static_cast<uint64_t>(n);
  return Status::OK();
}

Result<bool> FileLineSource::Next(std::string_view* line) {
  for (;;) {
    if (pos_ < end_) {
      const char* p = buf_.get() + pos_;
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', end_ - pos_));
      if (nl != nullptr) {
        *line = std::string_view(p, nl - p);
        pos_ = nl - buf_.get() + 1;
        return true;
      }
    }
    if (file_pos_ == file_end_) {
      if (pos_ == end_) return false;
      return Status::Corruption("the segment of bytes [" + std::to_string(range_offset_) + ", " +
                                std::to_string(file_end_) + ") of sorted run " + path_ +
                                " ends inside a line (no final newline); the file is truncated or the index is wrong");
    }
    DFS_RETURN_IF_ERROR(Fill());
  }
}

LineMerger::LineMerger(const KeySpec& spec, std::vector<LineSource*> sources)
    : spec_(spec), bytewise_(spec.bytewise()), sources_(std::move(sources)) {}

LineMerger::LineMerger(const KeySpec& spec, std::vector<std::unique_ptr<LineSource>> sources)
    : spec_(spec), bytewise_(spec.bytewise()), owned_(std::move(sources)) {
  for (const auto& s : owned_) sources_.push_back(s.get());
}

LineMerger::~LineMerger() = default;

bool LineMerger::Less(const Head& a, const Head& b) const {
  int c;
  if (bytewise_) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    // A key of up to 8 bytes is then a prefix of the other (zero padding matched).
    if (a.key.size() <= 8 || b.key.size() <= 8) {
      c = a.key.size() == b.key.size() ? 0 : (a.key.size() < b.key.size() ? -1 : 1);
    } else {
      c = BytewiseCompare(a.key.substr(8), b.key.substr(8));
    }
  } else {
    c = spec_.Compare(a.key, b.key);
  }
  return c != 0 ? c < 0 : a.source < b.source;
}

Result<bool> LineMerger::Load(uint32_t source, Head* head) {
  std::string_view line;
  DFS_ASSIGN_OR_RETURN(bool more, sources_[source]->Next(&line));
  if (!more) return false;
  head->line = line;
  head->key = spec_.SplitKey(line);
  head->prefix = bytewise_ ? KeyPrefix(head->key) : 0;
  head->source = source;
  return true;
}

void LineMerger::SiftDown(size_t i) {
  const size_t n = heap_.size();
  Head moving = heap_[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && Less(heap_[child + 1], heap_[child])) ++child;
    if (!Less(heap_[child], moving)) break;
    heap_[i] = heap_[child];
    i = child;
  }
  heap_[i] = moving;
}

Result<bool> LineMerger::Next(std::string_view* line) {
  if (!started_) {
    started_ = true;
    heap_.reserve(sources_.size());
    for (uint32_t i = 0; i < sources_.size(); ++i) {
      Head h;
      DFS_ASSIGN_OR_RETURN(bool more, Load(i, &h));
      if (more) heap_.push_back(h);
    }
    for (size_t i = heap_.size() / 2; i-- > 0;) SiftDown(i);
  } else if (advance_top_) {
    advance_top_ = false;
    DFS_ASSIGN_OR_RETURN(bool more, Load(heap_[0].source, &heap_[0]));
    if (!more) {
      heap_[0] = heap_.back();
      heap_.pop_back();
    }
    if (!heap_.empty()) SiftDown(0);
  }
  if (heap_.empty()) return false;
  *line = heap_[0].line;
  advance_top_ = true;
  return true;
}

}  // namespace dfs::streaming
