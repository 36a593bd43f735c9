// A partition as files: one directory per client holding that client's own
// images in the dataset's standard format, so a client can bring its data to
// a `client-data = local` run (runtime/local_data.h, docs/local-data.md)
// instead of taking its slice of a partition the server computes.
//
// Layout written by ExportPartition for client k, in DIR/client-<k>/:
//   IDX datasets (fashion-mnist, mnist):
//     train-images-idx3-ubyte  train-labels-idx1-ubyte    the client's training data
//     t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte     its local test split
//   emnist-<split>: the same with EMNIST's names (emnist-<split>-{train,test}-...),
//     its column-major images and its stored labels (letters: 1..26).
//   cifar10:  data_batch_1.bin (training data), test_batch.bin (local test split).
// Files are uncompressed. The training files hold the client's training
// images followed by its validation images: a client that brings its own data
// has one labelled set and carves its validation slice out of it itself
// (runtime/local_data.h says how), so the gate's images are not lost.
// Torch-free.
#ifndef LFL_PARTITIONING_EXPORT_H_
#define LFL_PARTITIONING_EXPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "partitioning/dataset.h"
#include "partitioning/partition.h"

namespace lfl {

// "client-<id>": the directory of client `id` under an export directory.
std::string ClientDirName(int64_t id);

// Writes DIR/client-<k>/ (created as needed; existing files are replaced
// atomically) for every client of `partition`, whose indices must fit `data`
// (CheckPartitionFits). InvalidArgument for a partition that does not fit, for
// a dataset whose name is no DatasetKind's (the choices listed) and for a partition with per-client input noise (the
// noise scheme adds it at training time; it is not part of the images);
// Unavailable, naming the path, when a directory or file cannot be written.
absl::Status ExportPartition(const Dataset& data, const Partition& partition,
                             const std::string& dir);

// Reads one client's files of dataset `kind` from `dir` (the layout above;
// IDX files may also be gzip-compressed, and cifar10 reads data_batch_2..5.bin
// too when present). Errors name the file: NotFound for a missing one, DataLoss
// for a corrupt one (wrong format, truncated, image/label counts that differ,
// label out of range), InvalidArgument for images of another size than the
// dataset's (28x28 for the IDX datasets) and for an empty training or test set.
absl::StatusOr<Dataset> LoadClientFiles(DatasetKind kind, const std::string& dir);

}  // namespace lfl

#endif  // LFL_PARTITIONING_EXPORT_H_
