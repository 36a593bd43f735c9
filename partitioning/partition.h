// Non-IID partitioning of a dataset across federated clients, and the JSON
// manifest that records the result.
//
// A partition is a list of index lists per client; the images stay in one
// shared Dataset. Partitioning is deterministic given the options (seed
// included): all randomness comes from std::mt19937_64 and this module's own
// sampling code, so the same options give the same manifest on every
// platform.
#ifndef LFL_PARTITIONING_PARTITION_H_
#define LFL_PARTITIONING_PARTITION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/modes/run_modes.h"
#include "partitioning/dataset.h"

namespace lfl {

struct PartitionOptions {
  // How training images are spread (names as in NIID-Bench):
  //   iid        shuffle, then split the whole training set into equal parts.
  //   shards     LotteryFL label skew: each client gets exactly
  //              classes_per_client distinct classes with exactly
  //              samples_per_class images each; no image is used twice.
  //              Classes are dealt so every class is used about equally
  //              (usage counts differ by at most one).
  //   dirichlet  label skew: for each class, proportions ~ Dir(beta) over the
  //              clients (NIID-Bench's rule, including its cap that skips
  //              clients already above the mean size); resampled until every
  //              client has min_samples. Uses the whole training set.
  //   quantity   quantity skew: client sizes ~ Dir(beta), labels IID;
  //              resampled until every client has min_samples.
  //   shared     for load and scale tests, not for accuracy: each client draws
  //              min_samples distinct training images uniformly from the whole
  //              training set, independently of every other client, so clients
  //              share images and the client count may exceed the dataset's size.
  //              Validation slices come, as for every scheme, from images no
  //              client trains on: once clients x min_samples covers the training
  //              set (100,000 x 10 of Fashion-MNIST's 60,000) none is left, the
  //              slices are empty and the pruning gate judges on the client's own
  //              training images instead (runtime/client_step.cc, Gate), so
  //              tickets still prune. Its manifests do not load back
  //              (PartitionFromJson refuses a training index used twice).
  //   noise      feature skew: an iid split, and client i records noise sigma
  //              noise_sigma*i/(clients-1) (models/ adds the noise).
  // (PartitionScheme, config/modes/run_modes.h: parsed from its name where a flag or a key is read.)
  PartitionScheme scheme = PartitionScheme::kShards;
  int64_t clients = 10;
  int64_t classes_per_client = 2;  // shards: labels per client (LotteryFL default)
  int64_t samples_per_class = 20;  // shards: training images per chosen class
  double beta = 0.5;               // dirichlet/quantity: concentration (small = skewed)
  int64_t min_samples = 10;        // dirichlet/quantity: minimum training images per client
  double noise_sigma = 0.1;        // noise: sigma of the last client
  // Size of each client's local test split, drawn from the test set with the
  // class proportions of the client's training data; images are distinct
  // within one client (clients may share test images). Every class the
  // client trains on appears in its test split when test_per_client is at
  // least the number of such classes.
  int64_t test_per_client = 200;
  // Validation slice size = ceil(fraction * train size), drawn like the test
  // split but from training images that no client trains on; smaller when
  // too few such images of a class remain, empty when none do (every scheme
  // but shards uses the whole training set).
  double validation_fraction = 0.2;
  // Where the validation slice comes from:
  //   unused  training images no client trains on (above): the client trains on all of its own.
  //   own     the LotteryFL reference's split: the last ceil(fraction * train size) of the
  //           client's own training images (for shards, of its last class) become its
  //           validation slice and it trains on the rest (the reference: 36 of 40 with 0.1).
  //           Its test split is drawn from the proportions of all of its images, as before.
  ValidationSource validation_source = ValidationSource::kUnused;
  uint64_t seed = 1;
};

struct ClientSplit {
  int64_t id = 0;
  std::vector<int64_t> train;       // indices into Dataset::train
  std::vector<int64_t> validation;  // indices into Dataset::train, disjoint from every train list
  std::vector<int64_t> test;        // indices into Dataset::test
  float noise_sigma = 0.0f;         // Gaussian input noise to add at training time
};

// What a manifest records. The names are text, not enums: `dataset` is a Dataset's name (a
// DatasetKind's ModeName, or a test's synthetic name) and `scheme` a PartitionScheme's ModeName,
// or "local" for the clients' own files (runtime/local_data.h), which no scheme made.
struct Partition {
  std::string dataset, scheme;
  uint64_t seed = 0;
  std::vector<ClientSplit> clients;  // clients[i].id == i
};

// Partitions `data` per `options`. InvalidArgument for bad options (clients
// outside [1, training images], classes_per_client outside [1, num_classes],
// beta <= 0, test_per_client above the test set, ...), for
// a dataset too small for them (the message says which class or total falls
// short) and for labels outside [0, num_classes);
// ResourceExhausted when dirichlet/quantity cannot reach min_samples within
// a bounded number of redraws (lower min_samples or raise beta).
absl::StatusOr<Partition> MakePartition(const Dataset& data, const PartitionOptions& options);

// Counts the labels of split[indices] per class; indices or labels out of
// range are ignored.
std::vector<int64_t> LabelHistogram(const Split& split, const std::vector<int64_t>& indices,
                                    int64_t num_classes);

// Checks that every index of `partition` is inside `data`'s splits and that
// the dataset names agree; for loading a manifest made elsewhere.
absl::Status CheckPartitionFits(const Partition& partition, const Dataset& data);

// The manifest:
//   {"dataset":..., "scheme":..., "seed":...,
//    "clients":[{"id":0,"train":[...],"validation":[...],"test":[...],"noise_sigma":0}, ...]}
// written one client per line.
std::string PartitionToJson(const Partition& partition);

// Parses and validates a manifest: every field present with the right type,
// indices non-negative, client ids 0..N-1 in order, noise_sigma finite and
// non-negative, no training index shared by two clients. DataLoss otherwise.
absl::StatusOr<Partition> PartitionFromJson(const std::string& json);

// Writes the manifest atomically (temp file in the same directory, fsync,
// rename), so readers never see a half-written file.
absl::Status WritePartition(const Partition& partition, const std::string& path);

// Reads and validates a manifest; errors name the file.
absl::StatusOr<Partition> ReadPartition(const std::string& path);

}  // namespace lfl

#endif  // LFL_PARTITIONING_PARTITION_H_
