// Ticket: what the server holds for one client, and what its checkpoint stores as is.
#ifndef LOTTERYFL_SERVER_TICKET_H_
#define LOTTERYFL_SERVER_TICKET_H_

#include <cstdint>
#include <vector>

#include "fl/mask.h"

namespace lfl {

// The server is the source of truth for every client's ticket: its mask and version and, with
// --quant bsq, the precision its bit planes reached. A client's new mask and bits take effect
// when the round they were sent in is aggregated; a retried or resumed round hands out the
// committed ticket again. The last reported accuracies ride along for the evaluation rows.
struct Ticket {
  Mask mask;
  double density = 1;  // mask.Density(), kept with it (recomputed on load, never serialized)
  uint32_t mask_version = 0;
  // Magnitude bits per prunable layer of the client's last accepted BSQ update (empty: never
  // quantized; BSQ then starts at --bsq-start-bits).
  std::vector<int> layer_bits;
  double personalized_accuracy = -1;   // after its last local training
  double global_masked_accuracy = -1;  // as the client reported it (client-data local)
  int64_t test_count = 0;
  int64_t num_samples = 0;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_TICKET_H_
