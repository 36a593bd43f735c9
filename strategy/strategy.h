// Strategy: the policy of a federated round, as Flower's Strategy owns its round
// (configure_fit, aggregate_fit, configure_evaluate). The coordinator (server/) conducts —
// phases, locks, sequencing, bytes — and asks the strategy every question of policy:
//
//   configure_fit       which live clients train (SampleClients), what each is asked to do
//                       (ConfigureFit), how the downlink is encoded, and the mask a client will
//                       get by pruning what it was served (DeriveMask: LotteryFL step 3)
//   aggregate_fit       what an update must satisfy (CheckUpdate), its weight (UpdateWeight),
//                       how updates combine (NewAggregator: the registered --aggregator,
//                       clipped)
//   configure_evaluate  which rounds are evaluated and whose tickets (Evaluates, EvalSample)
//
// Strategies are registered by algorithm (MakeStrategy); a new one derives from Strategy and
// overrides what differs. They are immutable and safe to share between threads. The client
// side builds the same strategy from the run config the server sends, so both sides agree on
// ConfigureFit and the encoding. Torch-free.
#ifndef LOTTERYFL_STRATEGY_STRATEGY_H_
#define LOTTERYFL_STRATEGY_STRATEGY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/run_config.h"
#include "fl/aggregator.h"
#include "fl/clipping.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"
#include "lottery/prune.h"
#include "wire/model_payload.h"

namespace lfl {

// What a sampled client does in its local step.
struct FitInstructions {
  bool train_ticket = false;  // LotteryFL: gate, prune, rewind; the update carries the ticket's mask
  PruneOptions prune;         // when train_ticket
  // FedProx: mu of the proximal term (mu/2)·‖w − w_start‖² the local training adds, w_start the
  // point it starts from (runtime/client_step.h, TrainTicket). 0: none.
  double proximal_mu = 0;
};

class Strategy {
 public:
  explicit Strategy(RunConfig config);
  virtual ~Strategy() = default;
  Strategy(const Strategy&) = delete;
  Strategy& operator=(const Strategy&) = delete;

  // The registered name (--algorithm).
  virtual std::string_view name() const = 0;
  // True when clients train lottery tickets: the downlink is θg ⊙ m_k and updates carry masks.
  virtual bool uses_masks() const = 0;

  // --- configure_fit ----------------------------------------------------------------------
  // The clients that train in `round`, `attempt`, among `live` (sorted ids): max(1,
  // floor(fraction · K)) of them, a sample seeded by (seed, round, attempt); every live client
  // when there are no more. Sorted.
  virtual std::vector<int64_t> SampleClients(std::vector<int64_t> live, uint64_t round, uint32_t attempt) const;
  virtual FitInstructions ConfigureFit() const;
  // How the server encodes a downlink (the caller sets round, client, mask).
  EncodeSpec DownlinkEncoding() const;
  // How an honest client encodes its update (the caller sets round, client, mask, exact levels).
  EncodeSpec UplinkEncoding() const;
  // The mask a client holding `held` will get by pruning `seen`, the downlink exactly as it
  // decodes it, when its ticket is still above the target density (LotteryFL step 3); nullopt
  // when it will not prune or pruning changes nothing. The default: no derived masks.
  virtual absl::StatusOr<std::optional<Mask>> DeriveMask(const TensorSet& seen, const Mask& held) const;
  // Whether a client holding `held` may prune this round (DeriveMask is worth the decode).
  virtual bool DerivesMask(const Mask& held) const;

  // --- aggregate_fit ----------------------------------------------------------------------
  // The rules every update must satisfy against the model `served` (θg) and the ticket `held`:
  // density, masks inside the ticket, the run's bit widths. On a refusal *cause names the rule
  // (layout, quant_mode, mask_outside_ticket, mask_density).
  virtual absl::Status CheckUpdate(const DecodedModel& update, const TensorSet& served, const Mask& held,
                                   std::string* cause) const;
  // The aggregation weight of a client that trains on `train_samples` images.
  virtual int64_t UpdateWeight(int64_t train_samples) const;
  // A fresh aggregator for a round on `layout`: the run's --aggregator, clipped at `clip_bound`
  // (+inf: measured, never clipped).
  absl::StatusOr<std::unique_ptr<ClippedAggregator>> NewAggregator(const TensorSet& layout, double clip_bound) const;
  // How the clip bound adapts over the run (--clip-*; fl/clipping.h).
  ClipOptions clip_options() const;

  // --- configure_evaluate -----------------------------------------------------------------
  // Every eval_every rounds, and always the last.
  virtual bool Evaluates(uint64_t round) const;
  // The clients whose tickets round `round` evaluates: a sample of eval_clients seeded by
  // (seed, round), independent of the training sample; every client at the last round. Sorted.
  virtual std::vector<int64_t> EvalSample(uint64_t round) const;

  const RunConfig& config() const { return config_; }

 protected:
  const RunConfig config_;
};

// The default training sample of a round (Strategy::SampleClients), also the simulator's for
// --algorithm local: max(1, floor(fraction · K)) of `live`, uniformly without replacement,
// seeded by (seed, round, attempt) (common/sampler.h), sorted.
std::vector<int64_t> SampleRound(const RunConfig& config, std::vector<int64_t> live, uint64_t round,
                                 uint32_t attempt);

// The strategy registered for config.algorithm: fedavg (dense, weighted by samples unless
// --weighted false), lotteryfl (tickets, masked; weighted likewise) or fedprox (lotteryfl's,
// whose clients also train with the proximal term of config.proximal_mu). InvalidArgument for
// an algorithm no server runs (local).
absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(const RunConfig& config);

}  // namespace lfl

#endif  // LOTTERYFL_STRATEGY_STRATEGY_H_
