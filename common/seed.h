// Seed mixing shared by the server (client sampling) and the clients (local training).
// Torch-free, dependency-free: everything above may use it.
#ifndef LOTTERYFL_COMMON_SEED_H_
#define LOTTERYFL_COMMON_SEED_H_

#include <cstdint>

namespace lfl {

// Mixes up to four values into one 64-bit seed (splitmix64 finalizer after each value). Defined
// bit for bit, so a run's seeds are the same with any compiler and standard library. Used for
// (seed, round, attempt) when sampling and (seed, client, round, attempt) when training.
uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0);

}  // namespace lfl

#endif  // LOTTERYFL_COMMON_SEED_H_
