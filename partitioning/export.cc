#include "partitioning/export.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace lfl {
namespace {

constexpr int64_t kIdxSide = 28;  // every IDX dataset this project reads is 28x28

// The standard file names of a dataset and how its IDX files store images and labels; the
// inverse of partitioning/dataset.cc's readers.
struct FileNames {
  bool cifar = false;
  std::string train_images, train_labels, test_images, test_labels;  // IDX; cifar: train, test
  bool transposed = false;   // EMNIST stores images column-major
  int64_t label_offset = 0;  // EMNIST letters stores labels 1..26
};

FileNames FileNamesFor(DatasetKind kind) {
  FileNames f;
  if (kind == DatasetKind::kCifar10) {
    f.cifar = true;
    f.train_images = "data_batch_1.bin";
    f.test_images = "test_batch.bin";
    return f;
  }
  std::string prefix, test_stem = "t10k";
  if (IsEmnist(kind)) {
    prefix = absl::StrCat(std::string(ModeName(kind)), "-");
    test_stem = "test";
    f.transposed = true;
    f.label_offset = kind == DatasetKind::kEmnistLetters ? 1 : 0;
  }
  f.train_images = absl::StrCat(prefix, "train-images-idx3-ubyte");
  f.train_labels = absl::StrCat(prefix, "train-labels-idx1-ubyte");
  f.test_images = absl::StrCat(prefix, test_stem, "-images-idx3-ubyte");
  f.test_labels = absl::StrCat(prefix, test_stem, "-labels-idx1-ubyte");
  return f;
}

void AppendBigEndian32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

// The images of split[indices], each `image_bytes` long, in file order.
std::vector<const uint8_t*> Images(const Split& split, const std::vector<int64_t>& indices,
                                   int64_t image_bytes) {
  std::vector<const uint8_t*> out;
  out.reserve(indices.size());
  for (int64_t i : indices) out.push_back(split.images.data() + i * image_bytes);
  return out;
}

std::string IdxImages(const Dataset& data, const std::vector<const uint8_t*>& images,
                      bool transposed) {
  const int64_t h = data.height, w = data.width;
  std::string out;
  out.reserve(16 + images.size() * h * w);
  AppendBigEndian32(0x00000803, &out);
  AppendBigEndian32(static_cast<uint32_t>(images.size()), &out);
  AppendBigEndian32(static_cast<uint32_t>(h), &out);
  AppendBigEndian32(static_cast<uint32_t>(w), &out);
  for (const uint8_t* image : images) {
    for (int64_t a = 0; a < (transposed ? w : h); ++a) {
      for (int64_t b = 0; b < (transposed ? h : w); ++b) {
        out.push_back(static_cast<char>(transposed ? image[b * w + a] : image[a * w + b]));
      }
    }
  }
  return out;
}

std::string IdxLabels(const std::vector<int64_t>& labels, int64_t offset) {
  std::string out;
  out.reserve(8 + labels.size());
  AppendBigEndian32(0x00000801, &out);
  AppendBigEndian32(static_cast<uint32_t>(labels.size()), &out);
  for (int64_t label : labels) out.push_back(static_cast<char>(label + offset));
  return out;
}

std::string CifarRecords(const Dataset& data, const std::vector<const uint8_t*>& images,
                         const std::vector<int64_t>& labels) {
  const int64_t bytes = data.image_bytes();
  std::string out;
  out.reserve(images.size() * (1 + bytes));
  for (size_t i = 0; i < images.size(); ++i) {
    out.push_back(static_cast<char>(labels[i]));
    out.append(reinterpret_cast<const char*>(images[i]), bytes);
  }
  return out;
}

std::vector<int64_t> Labels(const Split& split, const std::vector<int64_t>& indices) {
  std::vector<int64_t> out;
  out.reserve(indices.size());
  for (int64_t i : indices) out.push_back(split.labels[i]);
  return out;
}

// Writes the files of one client: `train` indexes data.train, `test` data.test.
absl::Status WriteClient(const Dataset& data, const FileNames& names,
                         const std::vector<int64_t>& train, const std::vector<int64_t>& test,
                         const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error)
    return absl::UnavailableError(absl::StrCat(dir, ": cannot create (", error.message(), ")"));
  const int64_t bytes = data.image_bytes();
  const std::vector<const uint8_t*> train_images = Images(data.train, train, bytes);
  const std::vector<const uint8_t*> test_images = Images(data.test, test, bytes);
  const std::vector<int64_t> train_labels = Labels(data.train, train);
  const std::vector<int64_t> test_labels = Labels(data.test, test);
  std::vector<std::pair<std::string, std::string>> files;
  if (names.cifar) {
    files.emplace_back(names.train_images, CifarRecords(data, train_images, train_labels));
    files.emplace_back(names.test_images, CifarRecords(data, test_images, test_labels));
  } else {
    files.emplace_back(names.train_images, IdxImages(data, train_images, names.transposed));
    files.emplace_back(names.train_labels, IdxLabels(train_labels, names.label_offset));
    files.emplace_back(names.test_images, IdxImages(data, test_images, names.transposed));
    files.emplace_back(names.test_labels, IdxLabels(test_labels, names.label_offset));
  }
  for (const auto& [name, contents] : files) {
    if (absl::Status s = WriteFileAtomically(absl::StrCat(dir, "/", name), contents); !s.ok())
      return s;
  }
  return absl::OkStatus();
}

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

}  // namespace

std::string ClientDirName(int64_t id) { return absl::StrCat("client-", id); }

absl::Status ExportPartition(const Dataset& data, const Partition& partition,
                             const std::string& dir) {
  if (absl::Status s = CheckPartitionFits(partition, data); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  // A Dataset carries its name as text (tests make synthetic ones); the files are a known
  // dataset's.
  absl::StatusOr<DatasetKind> kind = ParseMode<DatasetKind>(data.name);
  if (!kind.ok()) return absl::InvalidArgumentError(absl::StrCat("dataset: ", kind.status().message()));
  const FileNames names = FileNamesFor(*kind);
  for (const ClientSplit& client : partition.clients) {
    if (client.noise_sigma > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client ", client.id, " has input noise sigma ", client.noise_sigma,
          ": the noise scheme adds it at training time, exported files cannot carry it"));
    }
  }
  for (const ClientSplit& client : partition.clients) {
    std::vector<int64_t> train = client.train;
    train.insert(train.end(), client.validation.begin(), client.validation.end());
    if (absl::Status s = WriteClient(data, names, train, client.test,
                                     absl::StrCat(dir, "/", ClientDirName(client.id)));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Dataset> LoadClientFiles(DatasetKind kind, const std::string& dir) {
  const FileNames names = FileNamesFor(kind);
  const std::string name(ModeName(kind));
  const std::string train_path = absl::StrCat(dir, "/", names.train_images);
  const std::string test_path = absl::StrCat(dir, "/", names.test_images);
  Dataset data;
  if (names.cifar) {
    data.name = name;
    data.channels = 3;
    data.height = data.width = 32;
    if (absl::Status s = ReadCifar10Batch(train_path, &data.train); !s.ok()) return s;
    for (int batch = 2; batch <= 5; ++batch) {
      const std::string path = absl::StrCat(dir, "/data_batch_", batch, ".bin");
      if (!Exists(path)) continue;
      if (absl::Status s = ReadCifar10Batch(path, &data.train); !s.ok()) return s;
    }
    if (absl::Status s = ReadCifar10Batch(test_path, &data.test); !s.ok()) return s;
    return data;
  }
  absl::StatusOr<Dataset> loaded = ReadDatasetFiles(kind, dir);
  if (!loaded.ok()) return loaded.status();
  if (loaded->height != kIdxSide || loaded->width != kIdxSide) {
    return absl::InvalidArgumentError(absl::StrCat(train_path, "[.gz]: images are ", loaded->height,
                                                   "x", loaded->width, ", ", name, " images are ",
                                                   kIdxSide, "x", kIdxSide));
  }
  if (loaded->train.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(train_path, "[.gz]: no training images"));
  }
  if (loaded->test.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(test_path, "[.gz]: no test images"));
  }
  return loaded;
}

}  // namespace lfl
