#include "streaming/key_spec.h"

#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace dfs::streaming {
namespace {

constexpr uint32_t kMaxKeyFields = 1u << 20;
// MapOutputCollector keeps a record's partition in 16 bits.
constexpr uint32_t kMaxReduces = 1u << 16;
constexpr const char* kOptionsExample = "-kFIELD[.CHAR][n][r][,FIELD[.CHAR][n][r]], for example \"-k1,1 -k2,2nr\"";

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Turns \t \n \r \\ \xHH into bytes; a lone trailing backslash stays itself.
Result<std::string> Unescape(std::string_view value, std::string_view conf_key) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c != '\\' || i + 1 == value.size()) {
      out.push_back(c);
      continue;
    }
    char e = value[++i];
    switch (e) {
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case 'x': {
        int hi = i + 1 < value.size() ? HexDigit(value[i + 1]) : -1;
        int lo = i + 2 < value.size() ? HexDigit(value[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          return Status::InvalidArgument(std::string(conf_key) + " is " + Quoted(value) +
                                         ": \\x must be followed by two hex digits, for example \"\\x01\"");
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        break;
      }
      default:
        return Status::InvalidArgument(std::string(conf_key) + " is " + Quoted(value) + ": unknown escape \\" +
                                       std::string(1, e) + "; use \\t, \\n, \\r, \\\\ or \\xHH, for example \"\\t\"");
    }
  }
  return out;
}

// A positive decimal integer no larger than `max`.
Result<uint32_t> ParsePositive(std::string_view value, std::string_view conf_key, uint32_t max) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || v == 0 || v > max) {
    return Status::InvalidArgument(std::string(conf_key) + " is " + Quoted(value) +
                                   ": it must be a whole number from 1 to " + std::to_string(max) + ", for example 2");
  }
  return v;
}

// Reads the digits at *pos; false when there are none or they overflow.
bool ReadNumber(std::string_view s, size_t* pos, uint32_t* out) {
  auto [p, ec] = std::from_chars(s.data() + *pos, s.data() + s.size(), *out);
  if (ec != std::errc() || p == s.data() + *pos) return false;
  *pos = p - s.data();
  return true;
}

void ReadFlags(std::string_view s, size_t* pos, KeyFieldRange* r) {
  for (; *pos < s.size(); ++*pos) {
    if (s[*pos] == 'n') {
      r->numeric = true;
    } else if (s[*pos] == 'r') {
      r->reverse = true;
    } else {
      return;
    }
  }
}

// One -k argument: FIELD[.CHAR][n][r][,FIELD[.CHAR][n][r]].
Result<KeyFieldRange> ParseKeyArg(std::string_view arg, std::string_view options, std::string_view conf_key) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(std::string(conf_key) + " is " + Quoted(options) + ": in -k" + std::string(arg) +
                                   ", " + why + "; write " + kOptionsExample);
  };
  KeyFieldRange r;
  size_t pos = 0;
  if (!ReadNumber(arg, &pos, &r.start_field) || r.start_field == 0) return bad("the first field must be 1 or more");
  if (pos < arg.size() && arg[pos] == '.') {
    ++pos;
    if (!ReadNumber(arg, &pos, &r.start_char) || r.start_char == 0) {
      return bad("the character after '.' must be 1 or more");
    }
  }
  ReadFlags(arg, &pos, &r);
  if (pos < arg.size() && arg[pos] == ',') {
    ++pos;
    if (!ReadNumber(arg, &pos, &r.end_field) || r.end_field == 0) return bad("the field after ',' must be 1 or more");
    if (pos < arg.size() && arg[pos] == '.') {
      ++pos;
      if (!ReadNumber(arg, &pos, &r.end_char)) return bad("a character number must follow '.'");
    }
    ReadFlags(arg, &pos, &r);
  }
  if (pos != arg.size()) {
    return bad("unexpected '" + std::string(arg.substr(pos)) + "' (only the flags n and r are supported)");
  }
  if (r.end_field != 0 &&
      (r.end_field < r.start_field || (r.end_field == r.start_field && r.end_char != 0 && r.end_char < r.start_char))) {
    return bad("the range ends before it starts");
  }
  return r;
}

// The bytes of `key` that `r` selects; false when the key has no field start_field.
bool SelectRange(std::string_view key, std::string_view sep, const KeyFieldRange& r, std::string_view* out) {
  size_t field_begin = 0;
  size_t start = std::string_view::npos;
  size_t end = key.size();
  for (uint32_t f = 1;; ++f) {
    size_t hit = sep.size() == 1 ? key.find(sep[0], field_begin) : key.find(sep, field_begin);
    size_t field_end = hit == std::string_view::npos ? key.size() : hit;
    if (f == r.start_field) start = std::min<size_t>(field_begin + r.start_char - 1, field_end);
    if (f == r.end_field) {
      end = r.end_char == 0 ? field_end : std::min<size_t>(field_begin + r.end_char, field_end);
      break;
    }
    if (hit == std::string_view::npos || (r.end_field == 0 && f >= r.start_field)) break;
    field_begin = hit + sep.size();
  }
  if (start == std::string_view::npos) return false;
  *out = key.substr(start, std::max(end, start) - start);
  return true;
}

// A decimal number as Hadoop's KeyFieldBasedComparator reads it: [-]digits[.digits],
// stopping at the first other byte; no digits at all reads as 0.
struct Decimal {
  bool negative = false;
  std::string_view integer;   // without leading zeros
  std::string_view fraction;  // without trailing zeros
};

Decimal ParseDecimal(std::string_view s) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  Decimal d;
  size_t i = 0;
  if (i < s.size() && s[i] == '-') {
    d.negative = true;
    ++i;
  }
  while (i < s.size() && s[i] == '0') ++i;
  size_t b = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  d.integer = s.substr(b, i - b);
  if (i < s.size() && s[i] == '.') {
    b = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    d.fraction = s.substr(b, i - b);
    while (!d.fraction.empty() && d.fraction.back() == '0') d.fraction.remove_suffix(1);
  }
  if (d.integer.empty() && d.fraction.empty()) d.negative = false;  // -0 == 0
  return d;
}

int NumericCompare(std::string_view a, std::string_view b) {
  Decimal x = ParseDecimal(a);
  Decimal y = ParseDecimal(b);
  if (x.negative != y.negative) return x.negative ? -1 : 1;
  int c;
  if (x.integer.size() != y.integer.size()) {
    c = x.integer.size() < y.integer.size() ? -1 : 1;
  } else {
    c = x.integer.compare(y.integer);
    if (c == 0) c = x.fraction.compare(y.fraction);
  }
  return x.negative ? -c : c;
}

}  // namespace

Result<std::vector<KeyFieldRange>> ParseKeyFieldOptions(std::string_view options, std::string_view conf_key) {
  std::vector<KeyFieldRange> ranges;
  bool global_numeric = false;
  bool global_reverse = false;
  size_t pos = 0;
  auto next_token = [&]() -> std::string_view {
    while (pos < options.size() && std::isspace(static_cast<unsigned char>(options[pos]))) ++pos;
    size_t b = pos;
    while (pos < options.size() && !std::isspace(static_cast<unsigned char>(options[pos]))) ++pos;
    return options.substr(b, pos - b);
  };
  for (std::string_view tok = next_token(); !tok.empty(); tok = next_token()) {
    if (tok == "-n") {
      global_numeric = true;
    } else if (tok == "-r") {
      global_reverse = true;
    } else if (tok == "-nr" || tok == "-rn") {
      global_numeric = global_reverse = true;
    } else if (tok.substr(0, 2) == "-k") {
      std::string_view arg = tok.size() > 2 ? tok.substr(2) : next_token();
      if (arg.empty()) {
        return Status::InvalidArgument(std::string(conf_key) + " is " + Quoted(options) +
                                       ": -k needs a position after it; write " + kOptionsExample);
      }
      DFS_ASSIGN_OR_RETURN(KeyFieldRange r, ParseKeyArg(arg, options, conf_key));
      ranges.push_back(r);
    } else {
      return Status::InvalidArgument(std::string(conf_key) + " is " + Quoted(options) + ": unknown option " +
                                     Quoted(tok) + " (supported: -k, -n, -r, -nr); write " + kOptionsExample);
    }
  }
  // As Hadoop's KeyFieldHelper: global flags apply to ranges that have none, and
  // alone they apply to the whole key.
  for (KeyFieldRange& r : ranges) {
    if (!r.numeric && !r.reverse) {
      r.numeric = global_numeric;
      r.reverse = global_reverse;
    }
  }
  if (ranges.empty() && (global_numeric || global_reverse)) {
    KeyFieldRange whole;
    whole.numeric = global_numeric;
    whole.reverse = global_reverse;
    ranges.push_back(whole);
  }
  return ranges;
}

Result<KeySpec> KeySpec::FromConf(const std::function<std::string(std::string_view key)>& get,
                                  bool key_field_partitioner, uint32_t num_reduces) {
  KeySpec spec;
  // The first of `names` that is set, with its name (for error messages).
  auto lookup = [&](std::initializer_list<std::string_view> names, std::string_view* found) {
    for (std::string_view name : names) {
      std::string v = get(name);
      if (!v.empty()) {
        *found = name;
        return v;
      }
    }
    *found = *names.begin();
    return std::string();
  };
  std::string_view name;

  std::string v = lookup({"stream.map.output.field.separator"}, &name);
  if (!v.empty()) {
    DFS_ASSIGN_OR_RETURN(spec.field_separator, Unescape(v, name));
  }
  v = lookup({"stream.num.map.output.key.fields"}, &name);
  if (!v.empty()) {
    DFS_ASSIGN_OR_RETURN(spec.num_key_fields, ParsePositive(v, name, kMaxKeyFields));
  }
  v = lookup({"mapreduce.map.output.key.field.separator", "map.output.key.field.separator"}, &name);
  if (!v.empty()) {
    DFS_ASSIGN_OR_RETURN(spec.key_field_separator, Unescape(v, name));
  }

  spec.key_field_partitioner = key_field_partitioner;
  if (key_field_partitioner) {
    // Hadoop's KeyFieldBasedPartitioner looks at the old num.key.fields.for.partition first.
    v = lookup({"num.key.fields.for.partition"}, &name);
    if (!v.empty()) {
      DFS_ASSIGN_OR_RETURN(uint32_t n, ParsePositive(v, name, kMaxKeyFields));
      KeyFieldRange r;
      r.end_field = n;
      spec.partition_fields.push_back(r);
    } else {
      v = lookup({"mapreduce.partition.keypartitioner.options", "mapred.text.key.partitioner.options"}, &name);
      DFS_ASSIGN_OR_RETURN(spec.partition_fields, ParseKeyFieldOptions(v, name));
    }
  }

  std::string_view class_name_key;
  std::string comparator =
      lookup({"mapreduce.job.output.key.comparator.class", "mapred.output.key.comparator.class"}, &class_name_key);
  bool key_field_comparator = comparator.empty() || comparator.find("KeyFieldBasedComparator") != std::string::npos;
  bool text_comparator = comparator.ends_with("Text$Comparator") || comparator.ends_with("Text.Comparator");
  if (!key_field_comparator && !text_comparator) {
    return Status::InvalidArgument(
        std::string(class_name_key) + " is " + Quoted(comparator) +
        ": streaming jobs sort keys bytewise or with KeyFieldBasedComparator only; unset it, or set it to "
        "org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedComparator with "
        "mapreduce.partition.keycomparator.options, for example \"-k2,2nr\"");
  }
  if (key_field_comparator) {
    v = lookup({"mapreduce.partition.keycomparator.options", "mapred.text.key.comparator.options"}, &name);
    DFS_ASSIGN_OR_RETURN(spec.compare_fields, ParseKeyFieldOptions(v, name));
  }

  if (num_reduces > kMaxReduces) {
    return Status::InvalidArgument("mapreduce.job.reduces is " + std::to_string(num_reduces) +
                                   ": a job may have at most " + std::to_string(kMaxReduces) +
                                   " reduces, for example 16");
  }
  spec.num_reduces = num_reduces;
  return spec;
}

std::string_view KeySpec::SplitKeySlow(std::string_view line) const {
  uint32_t remaining = num_key_fields;
  if (field_separator.size() == 1) {
    const char* begin = line.data();
    const char* end = begin + line.size();
    for (const char* p = begin;;) {
      const char* hit = static_cast<const char*>(std::memchr(p, field_separator[0], end - p));
      if (hit == nullptr) return line;
      if (--remaining == 0) return line.substr(0, hit - begin);
      p = hit + 1;
    }
  }
  for (size_t pos = 0;;) {
    size_t hit = line.find(field_separator, pos);
    if (hit == std::string_view::npos) return line;
    if (--remaining == 0) return line.substr(0, hit);
    pos = hit + field_separator.size();
  }
}

uint32_t KeySpec::Partition(std::string_view key, uint32_t num_partitions) const {
  if (num_partitions <= 1) return 0;
  uint64_t h;
  if (!key_field_partitioner || partition_fields.empty()) {
    h = XXH3_64bits(key.data(), key.size());
  } else {
    // As Hadoop: each selected range feeds the hash in turn; missing fields are skipped.
    h = 0;
    for (const KeyFieldRange& r : partition_fields) {
      std::string_view part;
      if (SelectRange(key, key_field_separator, r, &part)) h = XXH3_64bits_withSeed(part.data(), part.size(), h);
    }
  }
  // Lemire's multiply-shift maps the hash onto [0, n) as evenly as `h % n`
  // without a 64-bit division per record.
  return static_cast<uint32_t>((static_cast<unsigned __int128>(h) * num_partitions) >> 64);
}

int KeySpec::Compare(std::string_view a, std::string_view b) const {
  if (compare_fields.empty()) return BytewiseCompare(a, b);
  for (const KeyFieldRange& r : compare_fields) {
    // A key without the field compares as an empty field.
    std::string_view x, y;
    SelectRange(a, key_field_separator, r, &x);
    SelectRange(b, key_field_separator, r, &y);
    int c = r.numeric ? NumericCompare(x, y) : BytewiseCompare(x, y);
    if (c != 0) return r.reverse ? -c : c;
  }
  return 0;
}

}  // namespace dfs::streaming
