#include "server/http/prometheus_text.h"

#include <charconv>
#include <cmath>

namespace lfl {
namespace {

// Metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names the same without
// ':'. Anything else becomes '_'.
std::string SanitizeName(const std::string& name, bool allow_colon) {
  std::string out;
  out.reserve(name.size() + 1);
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) out.push_back('_');
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || (allow_colon && c == ':');
    out.push_back(ok ? c : '_');
  }
  return out;
}

std::string Escape(const std::string& text, bool escape_quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, result.ptr);
}

std::string RenderLabels(const PrometheusLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += SanitizeName(labels[i].first, /*allow_colon=*/false);
    out += "=\"" + Escape(labels[i].second, /*escape_quote=*/true) + "\"";
  }
  return out + "}";
}

}  // namespace

void PrometheusText::Gauge(const std::string& name, const std::string& help, double value,
                           const PrometheusLabels& labels) {
  Add("gauge", name, help, value, labels);
}

void PrometheusText::Counter(const std::string& name, const std::string& help, double value,
                             const PrometheusLabels& labels) {
  Add("counter", name, help, value, labels);
}

void PrometheusText::Add(const char* type, const std::string& name, const std::string& help,
                         double value, const PrometheusLabels& labels) {
  const std::string metric = SanitizeName(name, /*allow_colon=*/true);
  Family* family = nullptr;
  for (Family& f : families_) {
    if (f.name == metric) family = &f;
  }
  if (family == nullptr) {
    families_.push_back(Family{metric, help, type, {}});
    family = &families_.back();
  }
  family->samples.push_back(metric + RenderLabels(labels) + " " + FormatValue(value));
}

std::string PrometheusText::str() const {
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP " + f.name + " " + Escape(f.help, /*escape_quote=*/false) + "\n";
    out += "# TYPE " + f.name + " " + f.type + "\n";
    for (const std::string& sample : f.samples) out += sample + "\n";
  }
  return out;
}

}  // namespace lfl
