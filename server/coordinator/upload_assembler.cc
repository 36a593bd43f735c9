#include "server/coordinator/upload_assembler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lfl {

absl::Status UploadAssembler::OnHeader(uint64_t declared, const std::function<absl::Status(uint64_t)>& admit) {
  if (failed_) return absl::FailedPreconditionError("the upload was already refused");
  if (have_header_) {
    failed_ = true;
    return absl::InvalidArgumentError("second update header");
  }
  if (absl::Status s = admit(declared); !s.ok()) {
    failed_ = true;
    return s;
  }
  have_header_ = true;
  declared_ = declared;
  // Bounded by admit (the model's largest encoding), so reserving cannot be abused.
  payload_.reserve(static_cast<size_t>(declared));
  return absl::OkStatus();
}

absl::Status UploadAssembler::OnData(std::string_view data) {
  if (failed_) return absl::FailedPreconditionError("the upload was already refused");
  if (!have_header_) {
    failed_ = true;
    return absl::InvalidArgumentError("update data before its header");
  }
  if (data.size() > max_chunk_bytes_) {
    failed_ = true;
    return absl::ResourceExhaustedError(
        absl::StrCat("update chunk of ", data.size(), " bytes is larger than ", max_chunk_bytes_));
  }
  if (data.size() > declared_ - payload_.size()) {
    failed_ = true;
    return absl::InvalidArgumentError(absl::StrCat("update longer than its declared ", declared_, " bytes"));
  }
  payload_.append(data);
  return absl::OkStatus();
}

absl::StatusOr<std::string> UploadAssembler::Finish() {
  if (failed_) return absl::FailedPreconditionError("the upload was already refused");
  if (!have_header_) return absl::InvalidArgumentError("empty update stream");
  if (payload_.size() != declared_) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncated update: ", payload_.size(), " of ", declared_, " bytes"));
  }
  return std::move(payload_);
}

}  // namespace lfl
