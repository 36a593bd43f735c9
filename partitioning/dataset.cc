#include "partitioning/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lfl {
namespace {

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;
constexpr uint64_t kMaxImageSide = 4096;  // larger is a corrupt header, not an image
constexpr int64_t kCifarImageBytes = 3 * 32 * 32;
constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;
constexpr int64_t kCifarClasses = 10;

enum class Format { kIdx, kCifar10 };

// How a dataset maps to files and labels.
struct DatasetSpec {
  Format format = Format::kIdx;
  std::string file_prefix;  // prepended to the IDX file names
  std::string train_stem = "train";
  std::string test_stem = "t10k";  // EMNIST: "test"
  int64_t num_classes = 10;
  bool transposed = false;   // EMNIST stores images column-major
  int64_t label_offset = 0;  // subtracted from every stored label
};

// EMNIST's class count of each split.
int64_t EmnistClasses(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kEmnistByclass:
      return 62;
    case DatasetKind::kEmnistBalanced:
    case DatasetKind::kEmnistBymerge:
      return 47;
    case DatasetKind::kEmnistLetters:
      return 26;
    default:
      return 10;  // digits, mnist
  }
}

DatasetSpec SpecFor(DatasetKind kind) {
  DatasetSpec spec;
  if (kind == DatasetKind::kCifar10) {
    spec.format = Format::kCifar10;
  } else if (IsEmnist(kind)) {
    spec.file_prefix = absl::StrCat(std::string(ModeName(kind)), "-");
    spec.test_stem = "test";
    spec.num_classes = EmnistClasses(kind);
    spec.transposed = true;
    spec.label_offset = kind == DatasetKind::kEmnistLetters ? 1 : 0;
  }
  return spec;  // fashion-mnist, mnist: the defaults
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

// The plain file if it exists, else the ".gz" one; NotFound names both.
absl::StatusOr<std::string> FindIdxFile(const std::string& dir, const std::string& base) {
  const std::string plain = absl::StrCat(dir, "/", base);
  if (FileExists(plain)) return plain;
  const std::string gz = absl::StrCat(plain, ".gz");
  if (FileExists(gz)) return gz;
  return absl::NotFoundError(absl::StrCat(plain, "[.gz]: no such file"));
}

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Checks that the IDX header is present and carries `magic`.
absl::Status CheckIdxHeader(const std::string& path, const std::vector<uint8_t>& bytes,
                            uint32_t magic, size_t header_bytes) {
  if (bytes.size() < header_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX header (", bytes.size(),
                                            " bytes, need ", header_bytes, ")"));
  }
  const uint32_t found = BigEndian32(bytes.data());
  if (found != magic) {
    return absl::DataLossError(absl::StrCat(path, ": bad IDX magic 0x", absl::Hex(found),
                                            ", expected 0x", absl::Hex(magic)));
  }
  return absl::OkStatus();
}

// Checks that the header plus `count * item_bytes` bytes of payload is
// exactly the file's length; `count` is the header's second word.
absl::Status CheckIdxLength(const std::string& path, const std::vector<uint8_t>& bytes,
                            size_t header_bytes, uint64_t item_bytes) {
  const uint64_t count = BigEndian32(bytes.data() + 4);
  const uint64_t expected = header_bytes + count * item_bytes;
  if (bytes.size() != expected) {
    return absl::DataLossError(absl::StrCat(path, ": ", count, " items need ", expected,
                                            " bytes but the file has ", bytes.size(),
                                            bytes.size() < expected ? " (truncated)" : ""));
  }
  return absl::OkStatus();
}

// Turns every column-major H×W image into row-major, in place.
void TransposeImages(int64_t height, int64_t width, std::vector<uint8_t>* images) {
  const int64_t image_bytes = height * width;
  std::vector<uint8_t> scratch(image_bytes);
  for (size_t base = 0; base < images->size(); base += image_bytes) {
    uint8_t* image = images->data() + base;
    for (int64_t r = 0; r < height; ++r) {
      for (int64_t c = 0; c < width; ++c) scratch[r * width + c] = image[c * height + r];
    }
    std::copy(scratch.begin(), scratch.end(), image);
  }
}

// Subtracts `offset` from every label and checks the result is a class.
absl::Status NormalizeLabels(const std::string& path, int64_t offset, int64_t num_classes,
                             Split* split) {
  for (size_t i = 0; i < split->labels.size(); ++i) {
    const int64_t label = split->labels[i] - offset;
    if (label < 0 || label >= num_classes) {
      return absl::DataLossError(absl::StrCat(path, ": label ", split->labels[i], " at index ", i,
                                              " is out of range [", offset, ", ",
                                              num_classes + offset, ")"));
    }
    split->labels[i] = label;
  }
  return absl::OkStatus();
}

// Reads the IDX image/label pair of the split named `stem` into *split and
// checks that its images are height×width (values of 0 accept any size and
// are set from the file).
absl::Status LoadIdxSplit(const std::string& dir, const DatasetSpec& spec, const std::string& stem,
                          Split* split, int64_t* height, int64_t* width) {
  const std::string base = absl::StrCat(spec.file_prefix, stem);
  absl::StatusOr<std::string> images_path = FindIdxFile(dir, base + "-images-idx3-ubyte");
  if (!images_path.ok()) return images_path.status();
  absl::StatusOr<std::string> labels_path = FindIdxFile(dir, base + "-labels-idx1-ubyte");
  if (!labels_path.ok()) return labels_path.status();

  int64_t rows = 0, cols = 0;
  if (absl::Status s = ReadIdxImages(*images_path, split, &rows, &cols); !s.ok()) return s;
  if (absl::Status s = ReadIdxLabels(*labels_path, split); !s.ok()) return s;
  if (split->images.size() != static_cast<size_t>(split->size() * rows * cols)) {
    return absl::DataLossError(absl::StrCat(*images_path, " holds ",
                                            split->images.size() / (rows * cols), " images but ",
                                            *labels_path, " holds ", split->size(), " labels"));
  }
  if (*height == 0) *height = rows;
  if (*width == 0) *width = cols;
  if (rows != *height || cols != *width) {
    return absl::DataLossError(absl::StrCat(*images_path, ": images are ", rows, "x", cols,
                                            ", expected ", *height, "x", *width));
  }
  if (spec.transposed) TransposeImages(rows, cols, &split->images);
  return NormalizeLabels(*labels_path, spec.label_offset, spec.num_classes, split);
}

absl::Status LoadCifar10(const std::string& dir, Dataset* data) {
  data->channels = 3;
  data->height = 32;
  data->width = 32;
  for (int batch = 1; batch <= 5; ++batch) {
    const std::string path = absl::StrCat(dir, "/data_batch_", batch, ".bin");
    if (absl::Status s = ReadCifar10Batch(path, &data->train); !s.ok()) return s;
  }
  return ReadCifar10Batch(absl::StrCat(dir, "/test_batch.bin"), &data->test);
}

// The files LoadDataset reads for `spec`, relative to the dataset directory (IDX files may
// also carry ".gz").
std::vector<std::string> ExpectedFiles(const DatasetSpec& spec) {
  if (spec.format == Format::kCifar10) {
    std::vector<std::string> files;
    for (int batch = 1; batch <= 5; ++batch)
      files.push_back(absl::StrCat("data_batch_", batch, ".bin"));
    files.push_back("test_batch.bin");
    return files;
  }
  std::vector<std::string> files;
  for (const std::string& stem : {spec.train_stem, spec.test_stem}) {
    for (const char* kind : {"-images-idx3-ubyte", "-labels-idx1-ubyte"}) {
      files.push_back(absl::StrCat(spec.file_prefix, stem, kind));
    }
  }
  return files;
}

// NotFound, before anything is read, when files of the dataset are missing: names every missing
// file, what the dataset's files are and where they come from, the --data-dir flag that points
// at them and the per-client files of lotteryfl-partition --export as the other source.
absl::Status CheckFilesPresent(DatasetKind kind, const DatasetSpec& spec, const std::string& dir,
                               bool default_dir) {
  const std::string name(ModeName(kind));
  const bool idx = spec.format == Format::kIdx;
  std::vector<std::string> missing;
  const std::vector<std::string> expected = ExpectedFiles(spec);
  for (const std::string& file : expected) {
    const std::string path = absl::StrCat(dir, "/", file);
    if (!FileExists(path) && !(idx && FileExists(path + ".gz"))) {
      missing.push_back(idx ? path + "[.gz]" : path);
    }
  }
  if (missing.empty()) return absl::OkStatus();
  std::string what;
  if (!idx) {
    what =
        "cifar10 reads the binary version of CIFAR-10 (cifar-10-binary.tar.gz; its directory "
        "cifar-10-batches-bin/ holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin)";
  } else if (!spec.file_prefix.empty()) {
    what = absl::StrCat(name, " reads EMNIST's IDX files as distributed (the gzip archive's ",
                        spec.file_prefix,
                        "{train,test}-{images-idx3,labels-idx1}-ubyte.gz, "
                        "gzip-compressed or not)");
  } else {
    what =
        absl::StrCat(name,
                     " reads the IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte, "
                     "gzip-compressed (.gz) or not",
                     kind == DatasetKind::kFashionMnist ? " (Debian's dataset-fashion-mnist installs them in "
                                               "/usr/share/datasets/fashion-mnist)"
                                             : "");
  }
  return absl::NotFoundError(absl::StrCat(
      name, ": ", missing.size(), " of its ", expected.size(),
      " files missing: ", absl::StrJoin(missing, ", "), ". ", what,
      ". Point --data-dir at the directory that holds them",
      default_dir
          ? absl::StrCat(
                " (default ", dir,
                !dir.empty() && dir.front() == '/' ? "" : ", relative to the working directory",
                ")")
          : absl::StrCat(" (now ", dir, ")"),
      "; or give each client its own files, as lotteryfl-partition --export DIR writes them, "
      "with lotteryfl-client --local-data DIR (docs/local-data.md)"));
}

}  // namespace

std::string DefaultDataDir(DatasetKind kind) {
  if (kind == DatasetKind::kFashionMnist) return "/usr/share/datasets/fashion-mnist";
  return absl::StrCat("data/", std::string(ModeName(kind)));
}

absl::StatusOr<std::vector<uint8_t>> ReadMaybeGzip(const std::string& path) {
  if (!FileExists(path)) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open (", std::strerror(errno), ")"));
  }
  constexpr unsigned kChunk = 1 << 20;
  std::vector<uint8_t> bytes;
  int read = 0;
  do {
    const size_t old_size = bytes.size();
    bytes.resize(old_size + kChunk);
    read = gzread(file, bytes.data() + old_size, kChunk);
    bytes.resize(old_size + std::max(read, 0));
  } while (read > 0);
  int error = Z_OK;
  const char* message = gzerror(file, &error);
  const std::string detail = message != nullptr ? message : "";
  gzclose(file);
  if (read < 0 || (error != Z_OK && error != Z_STREAM_END)) {
    return absl::DataLossError(
        absl::StrCat(path, ": corrupt or truncated gzip data (", detail, ")"));
  }
  return bytes;
}

absl::Status ReadIdxImages(const std::string& path, Split* split, int64_t* height, int64_t* width) {
  absl::StatusOr<std::vector<uint8_t>> bytes = ReadMaybeGzip(path);
  if (!bytes.ok()) return bytes.status();
  constexpr size_t kHeader = 16;
  if (absl::Status s = CheckIdxHeader(path, *bytes, kIdxImagesMagic, kHeader); !s.ok()) return s;
  const uint64_t rows = BigEndian32(bytes->data() + 8), cols = BigEndian32(bytes->data() + 12);
  if (rows == 0 || cols == 0 || rows > kMaxImageSide || cols > kMaxImageSide) {
    return absl::DataLossError(absl::StrCat(path, ": implausible image size ", rows, "x", cols));
  }
  if (absl::Status s = CheckIdxLength(path, *bytes, kHeader, rows * cols); !s.ok()) return s;
  split->images.assign(bytes->begin() + kHeader, bytes->end());
  *height = static_cast<int64_t>(rows);
  *width = static_cast<int64_t>(cols);
  return absl::OkStatus();
}

absl::Status ReadIdxLabels(const std::string& path, Split* split) {
  absl::StatusOr<std::vector<uint8_t>> bytes = ReadMaybeGzip(path);
  if (!bytes.ok()) return bytes.status();
  constexpr size_t kHeader = 8;
  if (absl::Status s = CheckIdxHeader(path, *bytes, kIdxLabelsMagic, kHeader); !s.ok()) return s;
  if (absl::Status s = CheckIdxLength(path, *bytes, kHeader, 1); !s.ok()) return s;
  split->labels.assign(bytes->begin() + kHeader, bytes->end());
  return absl::OkStatus();
}

absl::Status ReadCifar10Batch(const std::string& path, Split* split) {
  absl::StatusOr<std::vector<uint8_t>> bytes = ReadMaybeGzip(path);
  if (!bytes.ok()) return bytes.status();
  const int64_t size = static_cast<int64_t>(bytes->size());
  if (size == 0 || size % kCifarRecordBytes != 0) {
    return absl::DataLossError(absl::StrCat(path, ": ", size,
                                            " bytes is not a whole number of CIFAR-10 records of ",
                                            kCifarRecordBytes, " bytes (truncated?)"));
  }
  const int64_t records = size / kCifarRecordBytes;
  for (int64_t r = 0; r < records; ++r) {  // validate before touching *split
    const uint8_t label = (*bytes)[r * kCifarRecordBytes];
    if (label >= kCifarClasses) {
      return absl::DataLossError(
          absl::StrCat(path, ": label ", int{label}, " of record ", r, " is out of range [0, 10)"));
    }
  }
  split->images.reserve(split->images.size() + records * kCifarImageBytes);
  split->labels.reserve(split->labels.size() + records);
  for (int64_t r = 0; r < records; ++r) {
    const uint8_t* record = bytes->data() + r * kCifarRecordBytes;
    split->labels.push_back(record[0]);
    split->images.insert(split->images.end(), record + 1, record + kCifarRecordBytes);
  }
  return absl::OkStatus();
}

absl::StatusOr<Dataset> ReadDatasetFiles(DatasetKind kind, const std::string& dir) {
  const DatasetSpec spec = SpecFor(kind);
  Dataset data;
  data.name = std::string(ModeName(kind));
  data.num_classes = spec.num_classes;
  if (spec.format == Format::kCifar10) {
    if (absl::Status s = LoadCifar10(dir, &data); !s.ok()) return s;
    return data;
  }
  data.height = data.width = 0;
  for (const auto& [stem, split] :
       {std::pair(spec.train_stem, &data.train), std::pair(spec.test_stem, &data.test)}) {
    if (absl::Status s = LoadIdxSplit(dir, spec, stem, split, &data.height, &data.width);
        !s.ok()) {
      return s;
    }
  }
  return data;
}

absl::StatusOr<Dataset> LoadDataset(DatasetKind kind, const std::string& data_dir) {
  const std::string dir = data_dir.empty() ? DefaultDataDir(kind) : data_dir;
  if (absl::Status s = CheckFilesPresent(kind, SpecFor(kind), dir, data_dir.empty()); !s.ok()) return s;
  return ReadDatasetFiles(kind, dir);
}

}  // namespace lfl
