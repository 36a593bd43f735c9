#include "lottery/ticket.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "fl/byte_io.h"

namespace lfl {
namespace {

constexpr uint32_t kTicketMagic = 0x4b4c464c;  // "LFLK"
constexpr uint32_t kTicketVersion = 1;

}  // namespace

TicketState NewTicket(const TensorSet& layout) {
  TicketState ticket;
  ticket.mask = Mask::Full(layout);
  ticket.density = ticket.mask.Density();
  return ticket;
}

GateDecision DecidePrune(double validation_accuracy, double accuracy_threshold,
                         const TicketState& ticket, const PruneOptions& options) {
  if (validation_accuracy < accuracy_threshold) {
    return {false, absl::StrCat("accuracy ", validation_accuracy, " below threshold ",
                                accuracy_threshold)};
  }
  if (ticket.density <= options.target_density) {
    return {false, absl::StrCat("density ", ticket.density, " already at target ",
                                options.target_density)};
  }
  return {true, absl::StrCat("accuracy ", validation_accuracy, " >= ", accuracy_threshold,
                             " and density ", ticket.density, " > ", options.target_density)};
}

absl::StatusOr<bool> PruneTicket(const TensorSet& weights, const PruneOptions& options,
                                 TicketState* ticket) {
  absl::StatusOr<bool> changed = PruneByMagnitude(weights, options, &ticket->mask);
  if (!changed.ok() || !*changed) return changed;
  ticket->density = ticket->mask.Density();
  ++ticket->mask_version;
  ++ticket->prune_steps;
  return true;
}

std::string SerializeTicket(const TicketState& ticket) {
  ByteWriter w;
  w.U32(ticket.mask_version);
  w.I64(ticket.prune_steps);
  std::string mask = ticket.mask.Serialize();
  w.U64(mask.size());
  w.Bytes(mask);
  return SealEnvelope(kTicketMagic, kTicketVersion, w.Take());
}

absl::StatusOr<TicketState> DeserializeTicket(std::string_view bytes) {
  absl::StatusOr<std::string_view> body =
      OpenEnvelope(bytes, kTicketMagic, kTicketVersion, "Ticket");
  if (!body.ok()) return body.status();
  ByteReader r(*body);
  TicketState ticket;
  uint64_t mask_size;
  std::string_view mask_bytes;
  if (!r.U32(&ticket.mask_version) || !r.I64(&ticket.prune_steps) || !r.U64(&mask_size) ||
      mask_size != r.remaining() || !r.Bytes(mask_size, &mask_bytes)) {
    return absl::DataLossError("Ticket: truncated or malformed fields");
  }
  if (ticket.prune_steps < 0) {
    return absl::DataLossError(absl::StrCat("Ticket: negative prune steps ", ticket.prune_steps));
  }
  absl::StatusOr<Mask> mask = Mask::Deserialize(mask_bytes);
  if (!mask.ok()) return mask.status();
  ticket.mask = *std::move(mask);
  ticket.density = ticket.mask.Density();
  return ticket;
}

}  // namespace lfl
