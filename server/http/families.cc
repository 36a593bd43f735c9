#include "server/http/families.h"

#include <prometheus/text_serializer.h>

namespace lfl {
namespace {

prometheus::MetricFamily OneSampleFamily(std::string name, std::string help, prometheus::MetricType type,
                                         const PrometheusLabels& labels) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric& sample = family.metric.emplace_back();
  for (const auto& [label, value] : labels) sample.label.push_back({label, value});
  return family;
}

}  // namespace

prometheus::MetricFamily GaugeFamily(std::string name, std::string help, double value,
                                     const PrometheusLabels& labels) {
  prometheus::MetricFamily family =
      OneSampleFamily(std::move(name), std::move(help), prometheus::MetricType::Gauge, labels);
  family.metric[0].gauge.value = value;
  return family;
}

prometheus::MetricFamily CounterFamily(std::string name, std::string help, double value,
                                       const PrometheusLabels& labels) {
  prometheus::MetricFamily family =
      OneSampleFamily(std::move(name), std::move(help), prometheus::MetricType::Counter, labels);
  family.metric[0].counter.value = value;
  return family;
}

std::string RenderText(const std::vector<const prometheus::Collectable*>& collectables) {
  std::vector<prometheus::MetricFamily> families;
  for (const prometheus::Collectable* c : collectables) {
    std::vector<prometheus::MetricFamily> more = c->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace lfl
