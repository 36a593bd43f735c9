#include "server/http/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/http/families.h"

namespace lfl {
namespace {

absl::StatusOr<std::string> ReadProcFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(std::string("cannot read ") + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Entries of /proc/self/fd, not counting the descriptor that lists them.
absl::StatusOr<int64_t> CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::UnavailableError("cannot list /proc/self/fd");
  int64_t count = 0;
  const std::string own = std::to_string(dirfd(dir));
  while (const dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != ".." && name != own) ++count;
  }
  closedir(dir);
  return count;
}

}  // namespace

absl::StatusOr<ProcStat> ParseProcStat(absl::string_view text) {
  // "pid (comm) state ppid ...": comm may contain ") ", so split after the last ')'.
  const size_t paren = text.rfind(')');
  if (paren == absl::string_view::npos) return absl::InvalidArgumentError("/proc stat: no command name");
  std::vector<absl::string_view> f = absl::StrSplit(text.substr(paren + 1), ' ', absl::SkipWhitespace());
  // f[0] is field 3 (state); field n is f[n - 3].
  constexpr size_t kUtime = 14 - 3, kStime = 15 - 3, kStart = 22 - 3, kVsize = 23 - 3, kRss = 24 - 3;
  ProcStat stat;
  if (f.size() <= kRss || !absl::SimpleAtoi(f[kUtime], &stat.utime_ticks) ||
      !absl::SimpleAtoi(f[kStime], &stat.stime_ticks) || !absl::SimpleAtoi(f[kStart], &stat.start_ticks) ||
      !absl::SimpleAtoi(f[kVsize], &stat.virtual_bytes) || !absl::SimpleAtoi(f[kRss], &stat.resident_pages)) {
    return absl::InvalidArgumentError("/proc stat: malformed");
  }
  return stat;
}

absl::StatusOr<uint64_t> ParseBootTime(absl::string_view proc_stat) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    uint64_t btime = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtoi(line, &btime)) return btime;
  }
  return absl::InvalidArgumentError("/proc/stat: no btime line");
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  absl::StatusOr<std::string> self_stat = ReadProcFile("/proc/self/stat");
  absl::StatusOr<ProcStat> stat = self_stat.ok() ? ParseProcStat(*self_stat) : self_stat.status();
  if (stat.ok()) {
    families.push_back(CounterFamily("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                                     static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks));
    families.push_back(GaugeFamily("process_resident_memory_bytes", "Resident memory size in bytes.",
                                   static_cast<double>(stat->resident_pages) * sysconf(_SC_PAGESIZE)));
    families.push_back(GaugeFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                   static_cast<double>(stat->virtual_bytes)));
    absl::StatusOr<std::string> system_stat = ReadProcFile("/proc/stat");
    absl::StatusOr<uint64_t> boot = system_stat.ok() ? ParseBootTime(*system_stat) : system_stat.status();
    if (boot.ok()) {
      families.push_back(GaugeFamily("process_start_time_seconds",
                                     "Start time of the process since unix epoch in seconds.",
                                     static_cast<double>(*boot) + static_cast<double>(stat->start_ticks) / ticks));
    }
  }
  if (absl::StatusOr<int64_t> fds = CountOpenFds(); fds.ok()) {
    families.push_back(GaugeFamily("process_open_fds", "Number of open file descriptors.", static_cast<double>(*fds)));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    families.push_back(GaugeFamily("process_max_fds", "Maximum number of open file descriptors.",
                                   static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

}  // namespace lfl
