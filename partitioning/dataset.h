// Image-classification datasets held in memory as raw bytes.
//
// Readers for the IDX format (MNIST, Fashion-MNIST, EMNIST; plain or gzip)
// and the CIFAR-10 binary format. Every length in a file is checked against
// the file's actual size, and every error message names the offending file.
// Torch-free: models/ turns the bytes into tensors.
#ifndef LFL_PARTITIONING_DATASET_H_
#define LFL_PARTITIONING_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/modes/run_modes.h"  // DatasetKind

namespace lfl {

// One split (train or test) of a dataset.
struct Split {
  std::vector<uint8_t> images;  // N*C*H*W bytes, CHW order per image
  std::vector<int64_t> labels;  // N labels in [0, num_classes)
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

struct Dataset {
  std::string name;  // ModeName(DatasetKind) for a loaded dataset: "fashion-mnist", "cifar10", ...
  int64_t channels = 1, height = 28, width = 28, num_classes = 10;
  Split train, test;
  int64_t image_bytes() const { return channels * height * width; }
};

// Default directory of a dataset: "/usr/share/datasets/fashion-mnist" for
// fashion-mnist (Debian's dataset-fashion-mnist), "data/<name>" otherwise.
std::string DefaultDataDir(DatasetKind kind);

// Loads the train and test splits of `kind` from `data_dir` (empty →
// DefaultDataDir(kind)); the result's name is ModeName(kind).
//
// Datasets and files (each IDX file is tried plain first, then with ".gz"):
//   fashion-mnist, mnist:  {train,t10k}-{images-idx3,labels-idx1}-ubyte
//   emnist-<split>:        emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte
//                          for split in balanced (47 classes), byclass (62),
//                          bymerge (47), letters (26), digits (10), mnist (10).
//                          EMNIST images are stored transposed and are
//                          transposed back on load; letters labels 1..26
//                          become 0..25.
//   cifar10:               data_batch_1.bin..data_batch_5.bin, test_batch.bin
//                          (3×32×32, 10 classes).
// Errors: NotFound for missing files (checked before anything is read: the
// message names every missing file, what the dataset's files are, --data-dir,
// and per-client files of `lotteryfl-partition --export` as the other source),
// DataLoss for a corrupt file (truncated, bad magic, image/label count
// mismatch, label out of range). Messages name the file.
absl::StatusOr<Dataset> LoadDataset(DatasetKind kind, const std::string& data_dir = "");

// LoadDataset from `dir` without the up-front check: a missing file is
// NotFound naming that file alone. For a client's own files
// (LoadClientFiles), whose messages have their own context.
absl::StatusOr<Dataset> ReadDatasetFiles(DatasetKind kind, const std::string& dir);

// Lower level, for tests and tools.

// Reads a whole file, inflating it if it is gzip-compressed (zlib reads plain
// files unchanged). A truncated or corrupt gzip stream is DataLoss.
absl::StatusOr<std::vector<uint8_t>> ReadMaybeGzip(const std::string& path);

// Reads an IDX image file (magic 0x00000803: count, rows, cols, then bytes),
// replacing split->images and setting *height and *width. On error nothing
// is changed.
absl::Status ReadIdxImages(const std::string& path, Split* split, int64_t* height, int64_t* width);

// Reads an IDX label file (magic 0x00000801: count, then one byte per label),
// replacing split->labels (nothing is changed on error). Label ranges are
// checked by LoadDataset, which knows the number of classes.
absl::Status ReadIdxLabels(const std::string& path, Split* split);

// Reads a CIFAR-10 binary batch — records of 1 label byte (0..9) and 3072
// image bytes (R, G, B planes of 32×32) — and APPENDS them to *split, so the
// five training batches accumulate into one split. The official batches hold
// 10000 records; any positive whole number of records is accepted. On error
// *split is left unchanged.
absl::Status ReadCifar10Batch(const std::string& path, Split* split);

}  // namespace lfl

#endif  // LFL_PARTITIONING_DATASET_H_
