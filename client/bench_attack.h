// Benchmark-only attacks (lotteryfl-client / lotteryfl-sim --bench-attack): the chosen clients
// behave as hostile peers, so bench/security and bench/robust can measure the server's defenses.
#ifndef LOTTERYFL_CLIENT_BENCH_ATTACK_H_
#define LOTTERYFL_CLIENT_BENCH_ATTACK_H_

#include <cstdint>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"
#include "runtime/run_data.h"
#include "wire/model_payload.h"

namespace lfl {

struct LocalResult;  // runtime/local_update.h

// runtime/local_update.h

// For benchmarks of the server's defenses only (bench/security/poison.sh, bench/robust/run.sh):
// the listed clients of a host behave as attackers would. Never set outside a benchmark.
//
// The value attacks (kScale, kSignFlip, kNoise) let the attacker train honestly, then replace
// its trained values w. s is the point that training started from, the one the server's clip
// measures from (fl/clipping.h): θ0 ⊙ m' when the client pruned and rewound this round
// (its biases θ0's with rewind-biases, the served ones without), the served θg ⊙ m otherwise.
// The attacker stays inside its ticket (dropped elements stay 0) and encodes as an honest
// client of the run would: fp32, the uniform bits, or (bsq) each layer at the bits its honest
// update had, so only the values are hostile.
struct BenchAttack {
  enum Kind {
    kNone,
    kReturnServed,  // train as usual, then send back the served model unchanged
    kAddToBias,     // train as usual, then send the served model with bias_delta added to the
                    // first element of the last bias tensor (the output layer's)
    kRefetch,       // download each task's model `refetches` more times, then train honestly
    kScale,         // train honestly, then send s + scale · (w − s)
    kSignFlip,      // train honestly, then send s − (w − s)
    kNoise,         // train honestly, then send w + N(0, noise_sigma²) on every kept element
  } kind = kNone;
  double bias_delta = 990;
  int refetches = 300;
  double scale = -10;      // kScale's factor F
  double noise_sigma = 0;  // kNoise's standard deviation S (>= 0)
  std::set<int64_t> clients;  // the attacking client ids
};
// text: "none", "return-served", "bias:990", "refetch:300", "scale:-10", "signflip",
// "noise:0.01"; clients: the attacking ids as id ranges ("3", "0-2,7"; empty: none).
// InvalidArgument for anything else (a non-finite number, a negative noise or refetch count).
absl::StatusOr<BenchAttack> ParseBenchAttack(const std::string& text, const std::string& clients);

// A value attack (kScale, kSignFlip, kNoise) applied in place to a client's trained values w,
// on the elements `kept` keeps (biases included); dropped elements are set to 0. `start` is s
// (above) with the same layout. kNoise draws from `noise_seed` (Box–Muller over
// std::mt19937_64: the same draws with any standard library). InvalidArgument for another
// kind or mismatched layouts.
absl::Status PoisonTrainedValues(const BenchAttack& attack, const TensorSet& start, const Mask& kept,
                                 uint64_t noise_seed, TensorSet* values);

// Replaces the trained `result` of an attacking client by its attack, encoded as an honest
// client of the run would encode it (so only the values are hostile). `served`: the downlink
// as decoded, of ticket version `served_version`. A client not in attack.clients is untouched.
absl::Status ApplyBenchAttack(const BenchAttack& attack, const RunData& data, int64_t client_id, uint64_t round,
                              uint32_t attempt, const DecodedModel& served, uint32_t served_version,
                              LocalResult* result);

}  // namespace lfl

#endif  // LOTTERYFL_CLIENT_BENCH_ATTACK_H_
