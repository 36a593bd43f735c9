#include "server/coordinator/session_table.h"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "strategy/strategy.h"
#include "server/coordinator/round_coordinator.h"

namespace lfl {
namespace {

TEST(SessionTableTest, TokensAreRandomAndNameTheirClients) {
  SessionTable table(10);
  absl::StatusOr<std::string> a = table.Open({3, 1, 2, 2}, "", 5);
  absl::StatusOr<std::string> b = table.Open({7}, "", 5);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u) << "32 random bytes, hex";
  EXPECT_NE(*a, *b);
  absl::StatusOr<Session*> s = table.Find(*a, "");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->clients, (std::vector<int64_t>{1, 2, 3})) << "sorted, unique";
  EXPECT_EQ(table.LastSeen(2), 5);
  EXPECT_EQ(table.LastSeen(4), -1e300) << "client 4 has no session";
  EXPECT_TRUE(absl::IsFailedPrecondition(table.Find("not a token", "").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(table.Find(a->substr(0, 63) + "x", "").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(table.Open({}, "", 5).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(table.Open({10}, "", 5).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(table.Open({-1}, "", 5).status()));
}

TEST(SessionTableTest, BoundToTheCertificateThatOpenedIt) {
  SessionTable table(4);
  absl::StatusOr<std::string> token = table.Open({0, 1}, "lotteryfl-host-a", 1);
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE(table.Find(*token, "lotteryfl-host-a").ok());
  EXPECT_TRUE(absl::IsUnauthenticated(table.Find(*token, "lotteryfl-host-b").status()));
  EXPECT_TRUE(absl::IsUnauthenticated(table.Find(*token, "").status()));
}

TEST(SessionTableTest, ARejoinMovesOnlyTheClientsItAuthenticated) {
  SessionTable table(6);
  absl::StatusOr<std::string> old = table.Open({0, 1, 2}, "", 1);
  absl::StatusOr<std::string> other = table.Open({4, 5}, "", 1);
  // A join that authenticated client 2 (say with a stolen token) and 3.
  absl::StatusOr<std::string> fresh = table.Open({2, 3}, "", 2);
  ASSERT_TRUE(old.ok() && other.ok() && fresh.ok());
  absl::StatusOr<Session*> kept = table.Find(*old, "");
  ASSERT_TRUE(kept.ok()) << "the old session keeps the clients the join did not name";
  EXPECT_EQ((*kept)->clients, (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(table.Find(*other, "").ok()) << "shares nothing with the new one";
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.LastSeen(0), 1) << "client 0 is still in its host's session";
  EXPECT_EQ(table.LastSeen(2), 2);
  // The host joins again with all of its clients: the old session has none left and closes.
  absl::StatusOr<std::string> back = table.Open({0, 1, 2}, "", 3);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(table.Find(*old, "").status()));
  absl::StatusOr<Session*> stolen = table.Find(*fresh, "");
  ASSERT_TRUE(stolen.ok());
  EXPECT_EQ((*stolen)->clients, (std::vector<int64_t>{3})) << "client 2 is back with its host";
  EXPECT_EQ(table.LastSeen(2), 3);
}

// Through the coordinator: a host joins once and polls with its session.
class CoordinatorSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions o;
    o.config.clients = 6;
    o.config.fraction = 0.5;
    o.config.rounds = 2;
    o.config.algorithm = Algorithm::kFedAvg;
    o.config.join_timeout = 5;
    o.liveness_seconds = 15;
    for (int64_t id = 0; id < 6; ++id) o.tokens[id] = "t" + std::to_string(id);
    TensorSet model;
    model.tensors.push_back({"w", {2, 2}, std::vector<float>(4, 0.f), true});
    c_ = std::make_unique<RoundCoordinator>(o, model, *MakeStrategy(o.config), nullptr, "", now_);
  }
  std::vector<Credential> Creds(int64_t from, int64_t to) const {
    std::vector<Credential> out;
    for (int64_t id = from; id < to; ++id) out.push_back({id, "t" + std::to_string(id)});
    return out;
  }
  double now_ = 100;
  std::unique_ptr<RoundCoordinator> c_;
};

TEST_F(CoordinatorSessionTest, SessionPollsGetExactlyTheHostsTasks) {
  absl::StatusOr<HostJoin> a = c_->JoinHost(Creds(0, 3), now_);
  absl::StatusOr<HostJoin> b = c_->JoinHost(Creds(3, 6), now_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->config_toml.empty());
  EXPECT_EQ(c_->joined_clients(), 6);
  c_->Tick(now_);
  absl::StatusOr<PollResult> pa = c_->PollSession(a->session, "", now_);
  absl::StatusOr<PollResult> pb = c_->PollSession(b->session, "", now_);
  ASSERT_TRUE(pa.ok() && pb.ok());
  // The same tasks as polling with every credential.
  absl::StatusOr<PollResult> ca = c_->Poll(Creds(0, 3), now_);
  absl::StatusOr<PollResult> cb = c_->Poll(Creds(3, 6), now_);
  ASSERT_TRUE(ca.ok() && cb.ok());
  std::set<int64_t> by_session, by_credentials;
  for (const auto* r : {&*pa, &*pb}) {
    for (const Task& t : r->tasks) by_session.insert(t.client_id);
  }
  for (const auto* r : {&*ca, &*cb}) {
    for (const Task& t : r->tasks) by_credentials.insert(t.client_id);
  }
  EXPECT_EQ(by_session.size(), 3u) << "fraction 0.5 of 6";
  EXPECT_EQ(by_session, by_credentials);
  for (const Task& t : pa->tasks) EXPECT_LT(t.client_id, 3);
  for (const Task& t : pb->tasks) EXPECT_GE(t.client_id, 3);
}

TEST_F(CoordinatorSessionTest, SessionPollsKeepTheHostsClientsLive) {
  absl::StatusOr<HostJoin> a = c_->JoinHost(Creds(0, 6), now_);
  ASSERT_TRUE(a.ok());
  // Long after the join, only session polls were heard: every client is still sampled.
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(c_->PollSession(a->session, "", now_ + 10.0 * i).ok());
  c_->Tick(now_ + 40);
  absl::StatusOr<PollResult> p = c_->PollSession(a->session, "", now_ + 40);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->state, PollResult::kTrain);
  EXPECT_EQ(p->tasks.size(), 3u);
}

TEST_F(CoordinatorSessionTest, BadJoinsChangeNothingAndOldSessionsAreRefused) {
  std::vector<Credential> creds = Creds(0, 3);
  creds[2].token = "wrong";
  EXPECT_TRUE(absl::IsUnauthenticated(c_->JoinHost(creds, now_).status()));
  EXPECT_EQ(c_->joined_clients(), 0) << "all or none";
  EXPECT_TRUE(absl::IsInvalidArgument(c_->JoinHost({}, now_).status()));
  absl::StatusOr<HostJoin> first = c_->JoinHost(Creds(0, 3), now_);
  absl::StatusOr<HostJoin> again = c_->JoinHost(Creds(0, 3), now_ + 1);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(c_->joined_clients(), 3) << "a re-join is not counted twice";
  EXPECT_TRUE(absl::IsFailedPrecondition(c_->PollSession(first->session, "", now_ + 1).status()));
  EXPECT_TRUE(c_->PollSession(again->session, "", now_ + 1).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(c_->PollSession("forged", "", now_ + 1).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(c_->HeartbeatSession("forged", "", now_ + 1)));
  EXPECT_GE(c_->counters().auth_failures, 3u);
  ASSERT_TRUE(c_->Leave(Creds(0, 1), now_ + 2).ok());
  EXPECT_EQ(c_->joined_clients(), 2);
}

}  // namespace
}  // namespace lfl
