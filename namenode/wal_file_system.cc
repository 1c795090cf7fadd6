#include "namenode/wal_file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include "common/logging.h"

namespace dfs::namenode {

namespace {

// RocksDB names its WALs <number>.log.
bool IsWal(const std::string& fname) {
  const size_t slash = fname.rfind('/');
  const std::string base = slash == std::string::npos ? fname : fname.substr(slash + 1);
  if (base.size() <= 4 || base.compare(base.size() - 4, 4, ".log") != 0) return false;
  for (size_t i = 0; i + 4 < base.size(); ++i) {
    if (base[i] < '0' || base[i] > '9') return false;
  }
  return true;
}

class PrezeroedWalFs : public rocksdb::FileSystemWrapper {
 public:
  PrezeroedWalFs(const std::string& dir, size_t spare_bytes)
      : FileSystemWrapper(rocksdb::FileSystem::Default()),
        spare_(dir + "/" + kSpareWalName),
        tmp_(spare_ + ".tmp"),
        bytes_(spare_bytes) {
    worker_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "nn-wal-spare");
      Loop();
    });
  }

  ~PrezeroedWalFs() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  const char* Name() const override { return "DfsPrezeroedWalFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    if (!IsWal(fname)) return target()->NewWritableFile(fname, opts, result, dbg);
    bool take = false;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (!first_wal_) {
        // The database's first WAL since it opened: RocksDB holds its LOCK
        // now, so no other NameNode works in this directory. A spare left by
        // the last run is used as it is; without one (a new name directory,
        // or a crash before the last spare was done) one is made here, so
        // that the first WAL is written over zeros too: 64 MiB take well
        // under a second. The worker starts on the next spare after this.
        ::unlink(tmp_.c_str());  // half written when the last run stopped
        struct stat st {};
        ready_ = ::stat(spare_.c_str(), &st) == 0 && static_cast<size_t>(st.st_size) == bytes_;
        if (!ready_) {
          ::unlink(spare_.c_str());
          MakeSpareUnlocked(l);  // the worker waits for first_wal_, so it makes none meanwhile
        }
        first_wal_ = true;
      }
      take = ready_;
      ready_ = false;  // used now, or found unusable: make another
    }
    cv_.notify_all();
    if (take) {
      rocksdb::IOStatus s = target()->ReuseWritableFile(fname, spare_, opts, result, dbg);
      if (s.ok()) return s;
      Log("nn")->warn("Could not use the zeroed spare WAL {}: {}; this WAL is appended to instead (slower syncs, "
                      "nothing lost)",
                      spare_, s.ToString());
    }
    return target()->NewWritableFile(fname, opts, result, dbg);
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || (first_wal_ && !ready_); });
      if (stop_) return;
      if (retry_later_) {
        // A full or failing disk: try again later rather than spin; WALs are
        // appended meanwhile, which is only slower.
        retry_later_ = false;
        cv_.wait_for(l, std::chrono::seconds(30), [&] { return stop_; });
        continue;
      }
      MakeSpareUnlocked(l);
    }
  }

  // Called with mu_ held by `l`: makes a spare with the lock released, then
  // records how that went.
  void MakeSpareUnlocked(std::unique_lock<std::mutex>& l) {
    l.unlock();
    const bool made = MakeSpare();
    l.lock();
    ready_ = made;
    retry_later_ = !made;
  }

  // Writes bytes_ zeros to tmp_, syncs them and renames the file to spare_.
  bool MakeSpare() {
    int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Failed("create");
    std::vector<char> zeros(1 << 20, 0);
    for (size_t done = 0; done < bytes_;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) break;
      }
      const size_t n = std::min(zeros.size(), bytes_ - done);
      const ssize_t w = ::write(fd, zeros.data(), n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ::close(fd);
        return Failed("write");
      }
      done += static_cast<size_t>(w);
    }
    if (::fdatasync(fd) != 0) {
      ::close(fd);
      return Failed("sync");
    }
    ::close(fd);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return false;  // may be short: the next start discards it
    }
    if (::rename(tmp_.c_str(), spare_.c_str()) != 0) return Failed("rename");
    return true;
  }

  bool Failed(const char* what) {
    const int err = errno;  // before the logger's own calls
    Log("nn")->warn("Could not {} the zeroed spare WAL {}: {}. The NameNode works on, appending to its WALs (slower "
                    "syncs) and retrying every 30 s; check the disk under dfs.namenode.name.dir, or set "
                    "dfs.namenode.wal.spare-size=0 to stop",
                    what, tmp_, std::strerror(err));
    ::unlink(tmp_.c_str());
    return false;
  }

  const std::string spare_;
  const std::string tmp_;
  const size_t bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;      // spare_ holds bytes_ synced zeros
  bool first_wal_ = false;  // the database has asked for a WAL since it opened
  bool retry_later_ = false;  // the last spare failed: the worker waits before the next
  bool stop_ = false;
  std::thread worker_;  // last: starts once the members above exist
};

}  // namespace

WalFileSystem NewPrezeroedWalFileSystem(const std::string& db_dir, size_t spare_bytes) {
  WalFileSystem w;
  w.fs = std::make_shared<PrezeroedWalFs>(db_dir, spare_bytes);
  w.env = rocksdb::NewCompositeEnv(w.fs);
  return w;
}

}  // namespace dfs::namenode
