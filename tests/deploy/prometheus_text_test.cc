#include "server/http/prometheus_text.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

TEST(PrometheusTextTest, OneHelpAndTypePerFamilyBeforeItsSamples) {
  PrometheusText text;
  text.Gauge("lfl_accuracy", "Mean accuracy.", 0.5, {{"kind", "local"}});
  text.Counter("lfl_bytes_total", "Bytes sent.", 10);
  text.Gauge("lfl_accuracy", "ignored second help", 0.25, {{"kind", "global"}});
  EXPECT_EQ(text.str(),
            "# HELP lfl_accuracy Mean accuracy.\n"
            "# TYPE lfl_accuracy gauge\n"
            "lfl_accuracy{kind=\"local\"} 0.5\n"
            "lfl_accuracy{kind=\"global\"} 0.25\n"
            "# HELP lfl_bytes_total Bytes sent.\n"
            "# TYPE lfl_bytes_total counter\n"
            "lfl_bytes_total 10\n");
}

TEST(PrometheusTextTest, EscapesLabelValuesAndHelp) {
  PrometheusText text;
  text.Gauge("m", "line1\nback\\slash \"q\"", 1, {{"path", "a\\b\"c\nd"}});
  const std::string out = text.str();
  EXPECT_THAT(out, HasSubstr("# HELP m line1\\nback\\\\slash \"q\"\n"));
  EXPECT_THAT(out, HasSubstr("m{path=\"a\\\\b\\\"c\\nd\"} 1\n"));
}

TEST(PrometheusTextTest, SanitizesNames) {
  PrometheusText text;
  text.Gauge("9lfl-bits/layer", "h", 2, {{"la:bel", "v"}, {"", "w"}});
  EXPECT_THAT(text.str(), HasSubstr("_9lfl_bits_layer{la_bel=\"v\",_=\"w\"} 2\n"));
}

TEST(PrometheusTextTest, SpecialValuesAndExactRoundTrip) {
  PrometheusText text;
  const double third = 1.0 / 3.0;
  text.Gauge("nan", "h", std::numeric_limits<double>::quiet_NaN());
  text.Gauge("pinf", "h", std::numeric_limits<double>::infinity());
  text.Gauge("ninf", "h", -std::numeric_limits<double>::infinity());
  text.Gauge("third", "h", third);
  const std::string out = text.str();
  EXPECT_THAT(out, HasSubstr("\nnan NaN\n"));
  EXPECT_THAT(out, HasSubstr("\npinf +Inf\n"));
  EXPECT_THAT(out, HasSubstr("\nninf -Inf\n"));
  const size_t at = out.find("\nthird ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(std::strtod(out.c_str() + at + 7, nullptr), third);
}

TEST(PrometheusTextTest, EmptyBuilderRendersNothing) { EXPECT_EQ(PrometheusText().str(), ""); }

}  // namespace
}  // namespace lfl
