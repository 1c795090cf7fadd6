// KeySpec: how the streaming runner finds the key in a mapper output line, which
// reduce partition a key goes to, and how keys are ordered, following the job
// configuration keys of Hadoop streaming:
//
//   stream.map.output.field.separator        separates key from value ("\t")
//   stream.num.map.output.key.fields         the key is the line up to the Nth separator (1)
//   mapreduce.map.output.key.field.separator separates the key into fields for the
//                                            key-field partitioner and comparator ("\t")
//   mapreduce.partition.keypartitioner.options  "-k1,2": the key fields hashed by
//                                            KeyFieldBasedPartitioner (whole key)
//   mapreduce.partition.keycomparator.options   "-k2,2nr": KeyFieldBasedComparator
//                                            (unset: plain bytewise order of the key)
//
// The default and fast path orders keys bytewise as unsigned bytes, a shorter key
// first when it is a prefix of the other (Hadoop's Text order). The line itself is
// never changed: only the key part is hashed and compared.
//
// Thread-safety: a KeySpec is a value, immutable once built; share it freely.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dfs::streaming {

// One "-kPOS1[,POS2]" option of sort(1) as Hadoop reads it: POS is
// FIELD[.CHAR][n][r], fields and characters counted from 1. The range runs from
// character start_char of field start_field to character end_char (inclusive) of
// field end_field; end_field 0 means to the end of the key and end_char 0 to the
// end of end_field. Unlike Hadoop, a character position past the end of its field
// stops at that field's end (as sort(1) does) rather than running into the next.
struct KeyFieldRange {
  uint32_t start_field = 1;
  uint32_t start_char = 1;
  uint32_t end_field = 0;
  uint32_t end_char = 0;
  bool numeric = false;  // 'n': compare as a decimal number ("-1.5" < "10")
  bool reverse = false;  // 'r': descending
};

struct KeySpec {
  std::string field_separator = "\t";           // between key and value; never empty
  uint32_t num_key_fields = 1;                  // >= 1
  std::string key_field_separator = "\t";       // between the fields of a key; never empty
  bool key_field_partitioner = false;           // hash only partition_fields of the key
  std::vector<KeyFieldRange> partition_fields;  // empty: the whole key
  std::vector<KeyFieldRange> compare_fields;    // empty: bytewise order of the whole key
  uint32_t num_reduces = 1;

  // Reads the keys above through `get` (which returns "" for an unset key).
  // Separators may be written with escapes: \t \n \r \\ \xHH. Old key names
  // (map.output.key.field.separator, num.key.fields.for.partition,
  // mapred.text.key.partitioner.options, mapred.text.key.comparator.options) are
  // honoured when the new one is unset. Comparator options apply when
  // mapreduce.job.output.key.comparator.class is unset or names
  // KeyFieldBasedComparator. A bad value is an InvalidArgument naming the key, the
  // value and an example of a good one.
  static Result<KeySpec> FromConf(const std::function<std::string(std::string_view key)>& get,
                                  bool key_field_partitioner, uint32_t num_reduces);

  // The key of `line` (which has no '\n'): the line up to, not including, the
  // num_key_fields-th field separator; the whole line when it has fewer. The value
  // is whatever follows that separator.
  std::string_view SplitKey(std::string_view line) const {
    if (num_key_fields == 1 && field_separator.size() == 1) {  // the common case, inline
      const void* hit = line.empty() ? nullptr : std::memchr(line.data(), field_separator[0], line.size());
      return hit == nullptr ? line : line.substr(0, static_cast<const char*>(hit) - line.data());
    }
    return SplitKeySlow(line);
  }

  // The partition in [0, num_partitions) of `key`: XXH3 of the key (or of the
  // selected key fields), the same on every machine and every run.
  uint32_t Partition(std::string_view key, uint32_t num_partitions) const;

  // <0, 0 or >0 as a sorts before, with or after b.
  int Compare(std::string_view a, std::string_view b) const;

  // True when Compare is plain bytewise order, so the fast sort applies.
  bool bytewise() const { return compare_fields.empty(); }

 private:
  std::string_view SplitKeySlow(std::string_view line) const;
};

// Bytewise order of unsigned bytes, a prefix first: the default key order.
inline int BytewiseCompare(std::string_view a, std::string_view b) {
  // char_traits<char>::compare compares as unsigned char, like memcmp.
  return a.compare(b);
}

// The first 8 bytes of `key` as a big-endian integer, zero-padded: comparing two
// of these orders keys by their first 8 bytes (equal values need a full compare).
inline uint64_t KeyPrefix(std::string_view key) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "KeyPrefix assumes a little-endian host");
  uint64_t v = 0;
  if (key.size() >= 8) {
    std::memcpy(&v, key.data(), 8);
  } else {
    for (size_t i = 0; i < key.size(); ++i) v |= uint64_t{static_cast<unsigned char>(key[i])} << (8 * i);
  }
  return __builtin_bswap64(v);
}

// Parses "-k1,1 -k2,2nr"-style options (Hadoop KeyFieldHelper syntax: -kPOS1[,POS2]
// or "-k POS1[,POS2]", plus global -n, -r, -nr applying to ranges without flags).
// An empty string gives an empty list. `conf_key` names the key in error messages.
Result<std::vector<KeyFieldRange>> ParseKeyFieldOptions(std::string_view options, std::string_view conf_key);

}  // namespace dfs::streaming
