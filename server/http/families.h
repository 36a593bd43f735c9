#ifndef LFL_SERVER_HTTP_FAMILIES_H_
#define LFL_SERVER_HTTP_FAMILIES_H_

// Small builders over prometheus-cpp's MetricFamily, for collectors that read
// their values at scrape time (the coordinator's totals, /proc/self) instead of
// keeping their own prometheus::Counter objects in step with them.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace lfl {

// Label pairs of one sample, in the order given: {{"client", "3"}}.
using PrometheusLabels = std::vector<std::pair<std::string, std::string>>;

// A family with one gauge (a value that goes up and down) or one counter (a
// monotonically increasing total; by convention its name ends in "_total").
prometheus::MetricFamily GaugeFamily(std::string name, std::string help, double value,
                                     const PrometheusLabels& labels = {});
prometheus::MetricFamily CounterFamily(std::string name, std::string help, double value,
                                       const PrometheusLabels& labels = {});

// A Collectable whose families come from a function called at every scrape, on
// the HTTP server's thread: `collect` must be safe to call concurrently with the
// owner's own threads (take a lock or read atomics).
class CallbackCollectable : public prometheus::Collectable {
 public:
  using CollectFn = std::function<std::vector<prometheus::MetricFamily>()>;
  explicit CallbackCollectable(CollectFn collect) : collect_(std::move(collect)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return collect_(); }

 private:
  CollectFn collect_;
};

// The Prometheus text exposition (format 0.0.4) of the collectables' families,
// in order: what a scrape of an endpoint serving them returns.
std::string RenderText(const std::vector<const prometheus::Collectable*>& collectables);

}  // namespace lfl

#endif  // LFL_SERVER_HTTP_FAMILIES_H_
