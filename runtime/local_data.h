#ifndef LOTTERYFL_RUNTIME_LOCAL_DATA_H_
#define LOTTERYFL_RUNTIME_LOCAL_DATA_H_

// Run data from the clients' own files, for a run with `client-data = local`
// (docs/local-data.md): each hosted client reads its directory — the layout
// lotteryfl-partition --export writes (partitioning/export.h) — instead of
// taking a slice of the partition the server computes.
//
// What a client's files become:
//   * its training files are split, seeded by (seed, client id), into the
//     training set and the validation slice of LotteryFL's accuracy gate:
//     v = n − round(n / (1 + validation-fraction)) of its n images are held
//     out, so that v ≈ validation-fraction × (n − v), the partition's ratio
//     (an exported client, whose files hold train + validation, gets back
//     slices of the same sizes, though not the same images); v = 0 (gate on
//     the training images) for validation-fraction 0;
//   * its test files are its local test split;
//   * no input noise (noise is what the files hold).
// Normalization: the fixed per-dataset constants of FixedNormalization
// (runtime/run_data.h), as LoadRunData uses for a local run, so a client's
// inputs match the server's global model whatever its own data looks like.
// θ0 is MakeNamedNet(model, shape, seed) with the shape of the config's
// dataset, the server's θ0.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/run_config.h"
#include "runtime/run_data.h"

namespace lfl {

// Builds the run data of the hosted `client_ids` from `dir`: client k reads
// dir/client-<k>/, or — when it is the only hosted client and that directory
// does not exist — `dir` itself. The train and test tensors hold the hosted
// clients' images one after another; partition.clients has config.clients
// entries (indexed by id), those of clients not hosted empty.
//
// Errors (each names the path or the id): FailedPrecondition when
// config.client_data is not "local"; InvalidArgument for no ids, an id outside
// [0, clients), a file with images of another size than the dataset's or an
// empty training or test set; NotFound for a missing directory or file;
// DataLoss for a file of the wrong format, truncated, or with a label out of
// range.
absl::StatusOr<std::shared_ptr<const RunData>> LoadLocalRunData(
    const RunConfig& config, const std::string& dir, const std::vector<int64_t>& client_ids);

// The validation slice a client with `n` training images holds out (above).
int64_t LocalValidationSize(int64_t n, double validation_fraction);

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_LOCAL_DATA_H_
