// Partition manifests: JSON text, validation, atomic files.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "partitioning/partition.h"

namespace lfl {
namespace {

using nlohmann::json;

// Shortest text that reads back as the same float ("0.1", not 0.100000001).
std::string FloatText(float value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void AppendIndexList(const char* key, const std::vector<int64_t>& list, std::string* out) {
  absl::StrAppend(out, ",\"", key, "\":[");
  for (size_t i = 0; i < list.size(); ++i) absl::StrAppend(out, i == 0 ? "" : ",", list[i]);
  out->push_back(']');
}

absl::Status Corrupt(const std::string& what) {
  return absl::DataLossError(absl::StrCat("partition manifest: ", what));
}

absl::StatusOr<int64_t> NonNegativeInt(const json& value, const std::string& what) {
  if (!value.is_number_integer() ||
      (value.is_number_unsigned() &&
       value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) ||
      (!value.is_number_unsigned() && value.get<int64_t>() < 0)) {
    return Corrupt(absl::StrCat(what, " must be a non-negative integer"));
  }
  return value.get<int64_t>();
}

absl::StatusOr<std::vector<int64_t>> IndexList(const json& client, const char* key,
                                               const std::string& where) {
  const std::string what = absl::StrCat(where, " '", key, "'");
  const auto it = client.find(key);
  if (it == client.end() || !it->is_array()) return Corrupt(what + " must be an array");
  std::vector<int64_t> list;
  list.reserve(it->size());
  for (const json& value : *it) {
    absl::StatusOr<int64_t> index = NonNegativeInt(value, what + " entries");
    if (!index.ok()) return index.status();
    list.push_back(*index);
  }
  return list;
}

absl::StatusOr<ClientSplit> ParseClient(const json& value, int64_t position) {
  const std::string where = absl::StrCat("client #", position);
  if (!value.is_object()) return Corrupt(where + " must be an object");
  const auto id = value.find("id");
  if (id == value.end() || !id->is_number_integer() || id->get<int64_t>() != position) {
    return Corrupt(absl::StrCat(where, " must have \"id\": ", position));
  }
  ClientSplit client;
  client.id = position;
  for (const auto& [key, list] :
       {std::pair("train", &client.train), std::pair("validation", &client.validation),
        std::pair("test", &client.test)}) {
    absl::StatusOr<std::vector<int64_t>> parsed = IndexList(value, key, where);
    if (!parsed.ok()) return parsed.status();
    *list = std::move(*parsed);
  }
  const auto sigma = value.find("noise_sigma");
  if (sigma == value.end() || !sigma->is_number() || !std::isfinite(sigma->get<double>()) ||
      sigma->get<double>() < 0.0) {
    return Corrupt(where + " 'noise_sigma' must be a finite non-negative number");
  }
  client.noise_sigma = static_cast<float>(sigma->get<double>());
  return client;
}

absl::Status CheckTrainDisjoint(const Partition& partition) {
  std::vector<int64_t> all;
  for (const ClientSplit& client : partition.clients) {
    all.insert(all.end(), client.train.begin(), client.train.end());
  }
  std::sort(all.begin(), all.end());
  const auto repeat = std::adjacent_find(all.begin(), all.end());
  if (repeat != all.end()) {
    return Corrupt(absl::StrCat("training index ", *repeat, " is used more than once"));
  }
  return absl::OkStatus();
}

absl::Status ParseHeader(const json& root, Partition* partition) {
  if (!root.is_object()) return Corrupt("not a JSON object");
  for (const auto& [key, field] :
       {std::pair("dataset", &partition->dataset), std::pair("scheme", &partition->scheme)}) {
    const auto it = root.find(key);
    if (it == root.end() || !it->is_string()) {
      return Corrupt(absl::StrCat("'", key, "' must be a string"));
    }
    *field = it->get<std::string>();
  }
  const auto seed = root.find("seed");
  if (seed == root.end() || !seed->is_number_unsigned()) {
    return Corrupt("'seed' must be a non-negative integer");
  }
  partition->seed = seed->get<uint64_t>();
  return absl::OkStatus();
}

}  // namespace

std::string PartitionToJson(const Partition& partition) {
  std::string out = absl::StrCat("{\"dataset\":", json(partition.dataset).dump(),
                                 ",\"scheme\":", json(partition.scheme).dump(),
                                 ",\"seed\":", partition.seed, ",\"clients\":[");
  for (size_t i = 0; i < partition.clients.size(); ++i) {
    const ClientSplit& client = partition.clients[i];
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n", "{\"id\":", client.id);
    AppendIndexList("train", client.train, &out);
    AppendIndexList("validation", client.validation, &out);
    AppendIndexList("test", client.test, &out);
    absl::StrAppend(&out, ",\"noise_sigma\":", FloatText(client.noise_sigma), "}");
  }
  out += "\n]}\n";
  return out;
}

absl::StatusOr<Partition> PartitionFromJson(const std::string& text) {
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Corrupt("not valid JSON");
  Partition partition;
  if (absl::Status s = ParseHeader(root, &partition); !s.ok()) return s;
  const auto clients = root.find("clients");
  if (clients == root.end() || !clients->is_array()) return Corrupt("'clients' must be an array");
  for (size_t i = 0; i < clients->size(); ++i) {
    absl::StatusOr<ClientSplit> client = ParseClient((*clients)[i], static_cast<int64_t>(i));
    if (!client.ok()) return client.status();
    partition.clients.push_back(std::move(*client));
  }
  if (absl::Status s = CheckTrainDisjoint(partition); !s.ok()) return s;
  return partition;
}

absl::Status WritePartition(const Partition& partition, const std::string& path) {
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  const std::string text = PartitionToJson(partition);
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat(temp, ": cannot create (", std::strerror(errno), ")"));
  }
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  const bool synced = written == text.size() && fsync(fd) == 0;
  const bool closed = close(fd) == 0;
  if (!synced || !closed || std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return absl::UnavailableError(absl::StrCat(path, ": cannot write partition manifest"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Partition> ReadPartition(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<Partition> partition = PartitionFromJson(text.str());
  if (!partition.ok()) {
    return absl::Status(partition.status().code(),
                        absl::StrCat(path, ": ", partition.status().message()));
  }
  return partition;
}

}  // namespace lfl
