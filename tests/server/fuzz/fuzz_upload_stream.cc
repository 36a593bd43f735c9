// libFuzzer target for the upload path after transport: a SubmitUpdate stream (header, then
// chunks) assembled by UploadAssembler with the server's admission rule (declared size within
// the model's largest encoding), then decoded against the model layout by DecodeModel with the
// limits the server uses. Input: a list of frames
//   0x00 u32 declared        a header
//   0x01 u16 n, n bytes      a data chunk
//   0x02 u16 n, n bytes      a data chunk whose bytes are a codec body: it is sealed with a fresh
//                            header and CRC so that arbitrary bytes reach the record parser
// Properties (the target traps otherwise): nothing is buffered beyond the declared size; a
// refused stream stays refused; whatever decodes has the layout's shapes, finite values, and a
// mask that matches the layout.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "quant/codec/crc32c.h"
#include "server/coordinator/upload_assembler.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

void Require(bool property) {
  if (!property) __builtin_trap();
}

const TensorSet& Layout() {
  static const TensorSet layout = [] {
    TensorSet s;
    s.tensors.push_back({"conv.weight", {2, 1, 3, 3}, std::vector<float>(18, 0.f), true});
    s.tensors.push_back({"conv.bias", {2}, std::vector<float>(2, 0.f), false});
    s.tensors.push_back({"fc.weight", {3, 8}, std::vector<float>(24, 0.f), true});
    return s;
  }();
  return layout;
}

std::string Seal(const std::string& body) {
  std::string out("LFLQ\x01\x00\x00\x00", 8);
  const uint64_t n = body.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  const uint32_t crc = codec::Crc32c(body);
  out.append(reinterpret_cast<const char*>(&crc), 4);
  return out + body;
}

}  // namespace
}  // namespace lfl

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lfl;
  const TensorSet& layout = Layout();
  const uint64_t cap = MaxEncodedBytes(layout);
  UploadAssembler assembler(1 << 12);
  bool refused = false;
  size_t i = 0;
  while (i < size) {
    const uint8_t kind = data[i++];
    absl::Status s;
    if (kind % 3 == 0) {
      if (i + 4 > size) break;
      uint32_t declared = 0;
      std::memcpy(&declared, data + i, 4);
      i += 4;
      s = assembler.OnHeader(declared, [cap](uint64_t d) {
        return d > 0 && d <= cap ? absl::OkStatus() : absl::ResourceExhaustedError("size");
      });
    } else {
      if (i + 2 > size) break;
      uint16_t n = 0;
      std::memcpy(&n, data + i, 2);
      i += 2;
      n = static_cast<uint16_t>(std::min<size_t>(n, size - i));
      std::string chunk(reinterpret_cast<const char*>(data + i), n);
      i += n;
      if (kind % 3 == 2) chunk = Seal(chunk);
      s = assembler.OnData(chunk);
    }
    Require(assembler.received() <= assembler.declared() || !assembler.has_header());
    Require(assembler.received() <= cap);
    if (refused) Require(!s.ok());
    if (!s.ok()) refused = true;
  }
  absl::StatusOr<std::string> payload = assembler.Finish();
  if (refused) Require(!payload.ok());
  if (!payload.ok()) return 0;
  Require(payload->size() <= cap);
  Mask held = Mask::Full(layout);
  held.Set(0, 0, false);
  absl::StatusOr<DecodedModel> decoded = DecodeModel(*payload, layout, &held, 1);
  if (!decoded.ok()) return 0;
  Require(decoded->values.size() == layout.size());
  Require(decoded->mask.CheckMatches(layout).ok());
  for (size_t t = 0; t < layout.size(); ++t) {
    Require(decoded->values.tensors[t].shape == layout.tensors[t].shape);
    Require(decoded->values.tensors[t].values.size() == layout.tensors[t].values.size());
    for (float v : decoded->values.tensors[t].values) Require(std::isfinite(v));
  }
  return 0;
}
