#include "lottery/ticket.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fl/fl_testing.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

TEST(TicketTest, NewTicketIsFull) {
  TicketState ticket = NewTicket(testing::SmallModel(1));
  EXPECT_EQ(ticket.mask, Mask::Full(testing::SmallModel(1)));
  EXPECT_DOUBLE_EQ(ticket.density, 1.0);
  EXPECT_EQ(ticket.mask_version, 0u);
  EXPECT_EQ(ticket.prune_steps, 0);
}

TEST(DecidePruneTest, PrunesOnlyWhenAccurateEnoughAndAboveTarget) {
  TicketState ticket = NewTicket(testing::SmallModel(1));
  PruneOptions options{0.2, 0.1};
  EXPECT_TRUE(DecidePrune(0.9, 0.9, ticket, options).prune);  // >= threshold
  EXPECT_TRUE(DecidePrune(0.95, 0.9, ticket, options).prune);
  GateDecision low = DecidePrune(0.89, 0.9, ticket, options);
  EXPECT_FALSE(low.prune);
  EXPECT_THAT(low.reason, HasSubstr("below threshold"));

  ticket.density = 0.1;
  GateDecision at_target = DecidePrune(0.99, 0.9, ticket, options);
  EXPECT_FALSE(at_target.prune);
  EXPECT_THAT(at_target.reason, HasSubstr("target"));
  ticket.density = 0.05;
  EXPECT_FALSE(DecidePrune(0.99, 0.9, ticket, options).prune);
  ticket.density = 0.11;
  EXPECT_TRUE(DecidePrune(0.99, 0.9, ticket, options).prune);
}

TEST(PruneTicketTest, BumpsVersionOnlyWhenTheMaskChanges) {
  TensorSet model = testing::SmallModel(2);
  TicketState ticket = NewTicket(model);
  ASSERT_TRUE(PruneTicket(model, {0.2, 0.1}, &ticket).value());
  EXPECT_EQ(ticket.mask_version, 1u);
  EXPECT_EQ(ticket.prune_steps, 1);
  EXPECT_DOUBLE_EQ(ticket.density, ticket.mask.Density());
  EXPECT_LT(ticket.density, 1.0);

  ASSERT_FALSE(PruneTicket(model, {0.0, 0.1}, &ticket).value());
  EXPECT_EQ(ticket.mask_version, 1u);
  EXPECT_EQ(ticket.prune_steps, 1);

  TicketState before = ticket;
  EXPECT_FALSE(PruneTicket(model, {2.0, 0.1}, &ticket).ok());
  EXPECT_EQ(ticket.mask, before.mask);
  EXPECT_EQ(ticket.mask_version, 1u);
}

TicketState PrunedTicket() {
  TensorSet model = testing::SmallModel(2);
  TicketState ticket = NewTicket(model);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(PruneTicket(model, {0.2, 0.1}, &ticket).ok());
  return ticket;
}

TEST(TicketSerializationTest, RoundTrip) {
  TicketState ticket = PrunedTicket();
  TicketState back = DeserializeTicket(SerializeTicket(ticket)).value();
  EXPECT_EQ(back.mask, ticket.mask);
  EXPECT_EQ(back.density, ticket.density);
  EXPECT_EQ(back.mask_version, 3u);
  EXPECT_EQ(back.prune_steps, 3);
}

TEST(TicketSerializationTest, DensityIsRecomputedNotTrusted) {
  TicketState ticket = PrunedTicket();
  ticket.density = 0.999;  // stale cache
  EXPECT_EQ(DeserializeTicket(SerializeTicket(ticket)).value().density, ticket.mask.Density());
}

TEST(TicketSerializationTest, TruncationsAndByteFlipsAreRefused) {
  std::string bytes = SerializeTicket(PrunedTicket());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DeserializeTicket(bytes.substr(0, n)).ok()) << "prefix " << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x80);
    EXPECT_FALSE(DeserializeTicket(bad).ok()) << "byte " << i;
  }
  EXPECT_FALSE(DeserializeTicket(PrunedTicket().mask.Serialize()).ok());  // a Mask, not a ticket
}

}  // namespace
}  // namespace lfl
