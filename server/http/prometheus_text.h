#ifndef LFL_SERVER_HTTP_PROMETHEUS_TEXT_H_
#define LFL_SERVER_HTTP_PROMETHEUS_TEXT_H_

#include <string>
#include <utility>
#include <vector>

namespace lfl {

// Label pairs of one sample, rendered in the given order: {{"client", "3"}}.
using PrometheusLabels = std::vector<std::pair<std::string, std::string>>;

// Builds one scrape in the Prometheus text exposition format, version 0.0.4
// (the body served as "text/plain; version=0.0.4").
//
// Samples that share a metric name form one family: its "# HELP" and
// "# TYPE" lines are written once, before its first sample, and the family
// keeps the help text and kind of the first call that named it. Families are
// rendered in first-use order, samples within a family in call order.
//
// Characters that the format does not allow in metric or label names are
// replaced by '_' (and a leading digit is prefixed with '_'), so any input
// yields a parseable exposition. Help text and label values are escaped
// (backslash, newline, and in label values the double quote). Values use the
// shortest decimal form that reads back exactly; NaN and infinities are
// written as "NaN", "+Inf" and "-Inf".
//
// Not thread-safe: build one instance per scrape.
class PrometheusText {
 public:
  // A value that can go up and down (accuracy, density, connected clients).
  void Gauge(const std::string& name, const std::string& help, double value,
             const PrometheusLabels& labels = {});
  // A monotonically increasing total; by convention `name` ends in "_total".
  void Counter(const std::string& name, const std::string& help, double value,
               const PrometheusLabels& labels = {});

  // The exposition text; ends with a newline unless empty.
  std::string str() const;

 private:
  struct Family {
    std::string name;
    std::string help;
    const char* type;
    std::vector<std::string> samples;  // rendered "name{labels} value" lines
  };

  void Add(const char* type, const std::string& name, const std::string& help, double value,
           const PrometheusLabels& labels);

  std::vector<Family> families_;
};

}  // namespace lfl

#endif  // LFL_SERVER_HTTP_PROMETHEUS_TEXT_H_
