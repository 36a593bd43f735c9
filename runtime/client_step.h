// LotteryFL's client step (DESIGN §1, steps 3–5, with BSQ), as stages with one input and one
// output each, so each can be read and tested on its own:
//
//   [Test]    θg ⊙ m_k (in the net)          → its accuracy on the local test split (optional)
//   Gate      θg ⊙ m_k (in the net)          → GateOutcome   (validation accuracy, prune or not)
//   Prune     θg ⊙ m_k values, m_k           → PruneOutcome  (the new mask, whether it changed)
//   Rewind    the new mask                   → the net holds θ0 ⊙ m_k
//   Train     the net                        → the net, trained local epochs in fp32 (masked)
//   BsqPhase  the fp32-trained net           → BsqOutcome    (exact levels at the chosen bits)
//   Encode    the trained net (+ BsqOutcome) → EncodedUpdate (payload and the bits as sent)
//   Verify    the payload                    → the sent model's accuracy on the local test split
//
// RunClientStep chains them. The net is converted to and from a TensorSet only where a stage
// needs flat values: loading the downlink, rewinding, encoding and loading the decoded payload.
// Everything is deterministic given ClientStepOptions::train.seed (local_update.h derives it from
// seed, client, round and attempt). Torch-using, so it lives in runtime/; the pruning it calls
// (lottery/prune.h) stays torch-free for the coordinator, which derives the same masks.
#ifndef LOTTERYFL_RUNTIME_CLIENT_STEP_H_
#define LOTTERYFL_RUNTIME_CLIENT_STEP_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"
#include "lottery/prune.h"
#include "models/data.h"
#include "models/net.h"
#include "models/trainer.h"
#include "partitioning/partition.h"
#include "quant/bsq/bsq.h"
#include "wire/model_payload.h"

namespace lfl {

// What one client trains and evaluates on. Borrowed: everything must outlive the step.
struct ClientData {
  const TensorData* train = nullptr;  // the whole training split (indices below select)
  const TensorData* test = nullptr;
  const ClientSplit* split = nullptr;
  const TensorSet* theta0 = nullptr;  // round-0 weights, the rewind target
};

// The federated BSQ phase (docs/architecture.md, "BSQ as a phase of local training").
struct BsqPhaseOptions {
  int64_t epochs = 0;        // search + fine-tune; 0: no BSQ phase
  double alpha = 16;         // group-lasso strength of the search
  int64_t interval = -1;     // steps between re-quantizations; <0: a fifth of the search's steps
  int start_bits = 8;        // bits of a layer the client has no precision for yet (BSQ: 8)
  int min_bits = 0;          // no layer is sent below this precision
  double guard = 0.05;       // largest training-accuracy drop a lower precision may cost
  // Fine-tune the fp32 ticket quantization-aware at the searched bits (half of the phase's
  // epochs, counted in the local epochs). false: round the fp32 ticket, trained all local
  // epochs, to those bits, as the uniform modes round theirs.
  bool finetune = true;
};

struct ClientStepOptions {
  bool lottery = true;              // false: FedAvg (full mask, no gate, no pruning)
  double accuracy_threshold = 0.2;  // the gate: prune when validation accuracy >= this
  // The gate judges on the local test split instead of the validation slice (the LotteryFL
  // reference's choice; it lets the test split steer training, so it is off by default).
  bool gate_on_test = false;
  // The rewind resets the non-prunable tensors (biases) to θ0 as well. false: they keep the
  // values the net holds (the downlink's global biases); only the ticket's weights rewind.
  bool rewind_biases = true;
  PruneOptions prune;
  TrainOptions train;               // epochs = local epochs; seed from (seed, client, round, attempt)
  // FedProx: the fp32 training (TrainTicket) adds (proximal_mu / 2) · ‖w − w_start‖² over the
  // ticket's kept weights and the non-prunable tensors, w_start the weights it starts from: θ0 ⊙ m
  // after a prune and rewind, otherwise the downlink θg ⊙ m. The BSQ phase trains without it.
  // 0: none (train.proximal_* are TrainTicket's to set; leave them at their defaults).
  double proximal_mu = 0;
  // How the update travels: the run's Strategy::UplinkEncoding (strategy/strategy.h), which
  // ClientStepOptionsFor (local_update.h) copies here, so the client encodes exactly as the
  // server expects; the default sends fp32. Encode adds the round, the client, the mask
  // reference and the BSQ phase's exact levels (which override weight_bits).
  EncodeSpec uplink;
  BsqPhaseOptions bsq;              // with epochs > 0 (--quant bsq), training ends with the BSQ phase
  // Before anything else, evaluate the downlink θg ⊙ m_k on the local test split (LotteryFL's
  // global-masked accuracy). Only a client whose data the server does not hold needs it
  // (client-data = local); otherwise the server measures it and the extra pass is wasted.
  bool evaluate_downlink = false;
};

struct StepContext {
  ClientData data;
  ClientStepOptions options;
  uint64_t round = 0;      // written into the payload's header
  uint32_t client_id = 0;
};

// --- the stages -----------------------------------------------------------------------------

// The net's accuracy on the client's local test split (with its input noise).
absl::StatusOr<double> LocalTestAccuracy(const StepContext& ctx, NetImpl& net);

struct GateOutcome {
  double validation_accuracy = -1;
  bool prune = false;
};
// Evaluates the net (θg ⊙ m_k) on the validation slice (on the training images when the client
// has no validation slice; on its test split only with options.gate_on_test) and applies
// LotteryFL's gate: prune when the accuracy reaches the threshold and the mask's density is
// still above the target.
absl::StatusOr<GateOutcome> Gate(const StepContext& ctx, NetImpl& net, const Mask& mask);

struct PruneOutcome {
  Mask mask;
  bool changed = false;
};
// Drops prune.rate of each layer's surviving weights with the smallest |θg| (never below the
// target density; lottery/prune.h).
absl::StatusOr<PruneOutcome> Prune(const StepContext& ctx, const TensorSet& downlink, const Mask& mask);

// The lottery-ticket reset: loads θ0 ⊙ mask into the net, and θ0's biases (with
// options.rewind_biases; otherwise the biases stay what the net holds).
absl::Status RewindNet(const StepContext& ctx, const Mask& mask, NetImpl* net);

// Float 0/1 masks per parameter of `layout` (undefined for never-pruned tensors); what the
// Trainer's sources take.
std::vector<torch::Tensor> TorchMasks(const Mask& mask, const TensorSet& layout);

// Trains the net's own weights `epochs` epochs of masked SGD (pruned weights stay exactly 0),
// with options.proximal_mu > 0 towards the weights the net holds now, masked (FedProx's w_start).
absl::StatusOr<TrainStats> TrainTicket(const StepContext& ctx, const std::vector<torch::Tensor>& masks,
                                       int64_t epochs, NetImpl* net);

struct BsqOutcome {
  std::vector<QuantizedWeight> weights;  // exact levels of every prunable weight, as in the net
  std::vector<int> start_bits;           // per prunable layer, the bits the search started from
  std::vector<int> search_bits;          // what the search chose
  std::vector<int> bits;                 // what was sent
  bool precision_kept = false;           // the guard refused the search's bits
};
// The BSQ phase on the fp32-trained ticket in the net. `layer_bits` is the precision the server
// holds for this client (empty: options.bsq.start_bits everywhere; a layer at 0 bits restarts
// at 1). The search — bit-plane training with the group lasso — runs as extra epochs and only
// its bits are kept; the fp32 ticket is then fine-tuned quantization-aware at those bits (half
// of the phase's epochs; these count in the local epochs). The guard: when that costs more than
// options.bsq.guard training accuracy against the fp32 ticket, the fp32 ticket is fine-tuned at
// the start bits instead, one more bit per layer at a time until it passes (8 at most). Leaves
// the exact dequantized weights in the net.
absl::StatusOr<BsqOutcome> BsqPhase(const StepContext& ctx, const std::vector<torch::Tensor>& masks,
                                    const std::vector<int>& layer_bits, NetImpl* net);
// Of a BSQ phase of `epochs`, the epochs of fine-tuning at the learned bits (the rest searches).
int64_t BsqFinetuneEpochs(int64_t epochs);
// Of the phase in `options`, the epochs that replace fp32 epochs (0 without the fine-tune).
int64_t BsqFinetuneEpochs(const BsqPhaseOptions& options);

struct EncodedUpdate {
  std::string payload;
  std::vector<int> layer_bits;  // per prunable layer, as sent
  uint32_t mask_version = 0;    // the version the payload references
};
// Encodes the net's weights restricted to `mask` as options.uplink says. A LotteryFL ticket never
// sends its mask: it references `mask_version` (the server derives a pruned client's mask;
// server/coordinator/round_coordinator.h). `bsq` (nullable) supplies exact levels.
absl::StatusOr<EncodedUpdate> Encode(const StepContext& ctx, NetImpl& net, const Mask& mask,
                                     uint32_t mask_version, const BsqOutcome* bsq);

// Decodes the client's own payload, loads it into the net and evaluates it on the local test
// split, so the "personalized" accuracy is exactly that of the model the server receives.
absl::StatusOr<double> Verify(const StepContext& ctx, const EncodedUpdate& update, const Mask& mask,
                              NetImpl* net);

// --- the whole step -------------------------------------------------------------------------

struct ClientStepInput {
  const DecodedModel* downlink = nullptr;  // θg ⊙ m_k as received
  uint32_t mask_version = 0;               // the version of its mask
  std::vector<int> layer_bits;             // the BSQ precision the server holds for this client
};

struct ClientStepResult {
  EncodedUpdate update;
  Mask mask;                    // the ticket after this step
  bool mask_changed = false;
  GateOutcome gate;             // validation_accuracy -1 under FedAvg
  double global_masked_accuracy = -1;  // the downlink on the local test split (-1: not asked for)
  double local_accuracy = -1;   // the sent model on the local test split
  bool precision_kept = false;
  double train_seconds = 0, encode_seconds = 0;
};

// [Test →] Gate → Prune → Rewind → Train → BsqPhase → Encode → Verify on a fresh net of the
// downlink's layout (`net` must have it; its weights are overwritten).
absl::StatusOr<ClientStepResult> RunClientStep(const StepContext& ctx, const ClientStepInput& in, NetImpl* net);

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_CLIENT_STEP_H_
