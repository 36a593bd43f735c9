#ifndef LFL_SERVER_HTTP_PROCESS_COLLECTOR_H_
#define LFL_SERVER_HTTP_PROCESS_COLLECTOR_H_

// The process figures that Prometheus client libraries export by convention
// (prometheus-cpp ships none), read from /proc at every scrape (Linux only):
//   process_cpu_seconds_total       user + system CPU time
//   process_resident_memory_bytes   resident set size
//   process_virtual_memory_bytes    virtual memory size
//   process_open_fds                open file descriptors
//   process_max_fds                 the soft RLIMIT_NOFILE
//   process_start_time_seconds      start time, seconds since the Unix epoch
// A figure that cannot be read is left out of the scrape rather than reported as 0.

#include <cstdint>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lfl {

class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

// The fields of /proc/<pid>/stat that the collector uses, in the kernel's units.
struct ProcStat {
  uint64_t utime_ticks = 0, stime_ticks = 0;  // CPU time, clock ticks
  uint64_t start_ticks = 0;                   // start time after boot, clock ticks
  uint64_t virtual_bytes = 0;
  uint64_t resident_pages = 0;
};
// Parses /proc/<pid>/stat (the command name may hold spaces and parentheses).
absl::StatusOr<ProcStat> ParseProcStat(absl::string_view text);
// The boot time ("btime" line of /proc/stat), seconds since the Unix epoch.
absl::StatusOr<uint64_t> ParseBootTime(absl::string_view proc_stat);

}  // namespace lfl

#endif  // LFL_SERVER_HTTP_PROCESS_COLLECTOR_H_
