// The text the endpoint serves, built by prometheus-cpp's serializer from our
// families, and the /proc parsing behind the process metrics.

#include <cmath>
#include <cstdlib>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/families.h"
#include "server/http/process_collector.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

std::string Render(std::vector<prometheus::MetricFamily> families) {
  CallbackCollectable c([families] { return families; });
  return RenderText({&c});
}

TEST(PrometheusTextTest, OneHelpAndTypePerFamilyBeforeItsSamples) {
  EXPECT_EQ(Render({GaugeFamily("lfl_accuracy", "Mean accuracy.", 0.5, {{"kind", "local"}}),
                    CounterFamily("lfl_bytes_total", "Bytes sent.", 10)}),
            "# HELP lfl_accuracy Mean accuracy.\n"
            "# TYPE lfl_accuracy gauge\n"
            "lfl_accuracy{kind=\"local\"} 0.5\n"
            "# HELP lfl_bytes_total Bytes sent.\n"
            "# TYPE lfl_bytes_total counter\n"
            "lfl_bytes_total 10\n");
}

// prometheus-cpp 1.0.1 escapes label values but writes help text as given: help strings here
// are one-line constants.
TEST(PrometheusTextTest, EscapesLabelValues) {
  const std::string out = Render({GaugeFamily("m", "back\\slash", 1, {{"path", "a\\b\"c\nd"}})});
  EXPECT_THAT(out, HasSubstr("# HELP m back\\slash\n"));
  EXPECT_THAT(out, HasSubstr("m{path=\"a\\\\b\\\"c\\nd\"} 1\n"));
}

TEST(PrometheusTextTest, SpecialValuesAndExactRoundTrip) {
  const double third = 1.0 / 3.0;
  const std::string out = Render({GaugeFamily("nan", "h", std::numeric_limits<double>::quiet_NaN()),
                                  GaugeFamily("pinf", "h", std::numeric_limits<double>::infinity()),
                                  GaugeFamily("ninf", "h", -std::numeric_limits<double>::infinity()),
                                  GaugeFamily("third", "h", third), CounterFamily("big_total", "h", 1e15 + 1)});
  EXPECT_THAT(out, HasSubstr("\nnan Nan\n"));
  EXPECT_THAT(out, HasSubstr("\npinf +Inf\n"));
  EXPECT_THAT(out, HasSubstr("\nninf -Inf\n"));
  const size_t at = out.find("\nthird ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(std::strtod(out.c_str() + at + 7, nullptr), third);
  EXPECT_THAT(out, HasSubstr("\nbig_total 1000000000000001\n"));
}

TEST(PrometheusTextTest, NothingCollectedRendersNothing) { EXPECT_EQ(Render({}), ""); }

TEST(ProcStatTest, ParsesFieldsAfterACommandNameWithSpacesAndParentheses) {
  // Fields 3.. of a real line; the command name is "(a b) (c)".
  const std::string line =
      "4242 ((a b) (c)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 125 0 0 20 0 3 0 98765 "
      "123456789 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  absl::StatusOr<ProcStat> stat = ParseProcStat(line);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->utime_ticks, 250u);
  EXPECT_EQ(stat->stime_ticks, 125u);
  EXPECT_EQ(stat->start_ticks, 98765u);
  EXPECT_EQ(stat->virtual_bytes, 123456789u);
  EXPECT_EQ(stat->resident_pages, 4321u);
  EXPECT_FALSE(ParseProcStat("4242 (x) S 1 2 3").ok());
  EXPECT_FALSE(ParseProcStat("no parenthesis").ok());
}

TEST(ProcStatTest, BootTimeFromProcStat) {
  absl::StatusOr<uint64_t> btime = ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1764579000\nprocesses 9\n");
  ASSERT_TRUE(btime.ok()) << btime.status();
  EXPECT_EQ(*btime, 1764579000u);
  EXPECT_FALSE(ParseBootTime("cpu 1 2 3\n").ok());
}

}  // namespace
}  // namespace lfl
