#include "namenode/namenode_service.h"

#include <fmt/format.h>

#include "common/logging.h"
#include "common/rpc/server.h"
#include "namenode/block_manager.h"
#include "namenode/namesystem.h"
#include "proto/datanode.pb.h"
#include "proto/namenode.pb.h"

namespace dfs::namenode {

namespace {

Caller CallerOf(const rpc::CallContext& ctx) { return Caller{ctx.user, ctx.client_name, ctx.peer_ip}; }

}  // namespace

void RegisterNameNodeService(rpc::RpcServer* s, Namesystem* ns, BlockManager* bm) {
  using namespace proto;  // NOLINT: message names read better unqualified here
  using Ctx = rpc::CallContext;
  // Short read-only calls run on the I/O thread that read them (no hand-off);
  // everything that may wait (group commit, long scans) runs on the pool.
  constexpr auto kInline = rpc::RpcServer::Dispatch::kInline;

  // ---- Client protocol --------------------------------------------------
  s->Register<MkdirsRequest, MkdirsResponse>(
      MKDIRS, "mkdirs", [ns](const Ctx& c, const auto& rq, auto* rs) { return ns->Mkdirs(CallerOf(c), rq, rs); });
  // create, append and complete only apply their batch and leave the reply to
  // the WAL replier thread, which sends it once the batch is durable: they never
  // wait, so they run inline too (a hand-off to the pool would cost more CPU
  // than the call itself).
  s->RegisterAsync<CreateRequest, CreateResponse>(
      CREATE, "create",
      [ns](const Ctx& c, const auto& rq, auto rs, auto done) {
        ns->CreateAsync(CallerOf(c), rq, rs.get(), std::move(done));
      },
      kInline);
  s->RegisterAsync<AppendRequest, AppendResponse>(
      APPEND, "append",
      [ns](const Ctx& c, const auto& rq, auto rs, auto done) {
        ns->AppendAsync(CallerOf(c), rq, rs.get(), std::move(done));
      },
      kInline);
  s->Register<AddBlockRequest, AddBlockResponse>(
      ADD_BLOCK, "addBlock", [ns](const Ctx& c, const auto& rq, auto* rs) { return ns->AddBlock(CallerOf(c), rq, rs); });
  s->Register<UpdateBlockForPipelineRequest, UpdateBlockForPipelineResponse>(
      UPDATE_BLOCK_FOR_PIPELINE, "updateBlockForPipeline",
      [ns](const Ctx& c, const auto& rq, auto* rs) { return ns->UpdateBlockForPipeline(CallerOf(c), rq, rs); });
  s->Register<AbandonBlockRequest, AbandonBlockResponse>(
      ABANDON_BLOCK, "abandonBlock",
      [ns](const Ctx& c, const auto& rq, auto*) { return ns->AbandonBlock(CallerOf(c), rq); });
  s->RegisterAsync<CompleteRequest, CompleteResponse>(
      COMPLETE, "complete",
      [ns](const Ctx& c, const auto& rq, auto rs, auto done) {
        ns->CompleteAsync(CallerOf(c), rq, rs.get(), std::move(done));
      },
      kInline);
  s->Register<GetBlockLocationsRequest, GetBlockLocationsResponse>(
      GET_BLOCK_LOCATIONS, "getBlockLocations",
      [ns](const Ctx& c, const auto& rq, auto* rs) { return ns->GetBlockLocations(CallerOf(c), rq, rs); }, kInline);
  s->Register<GetFileInfoRequest, GetFileInfoResponse>(
      GET_FILE_INFO, "getFileInfo", [ns](const Ctx&, const auto& rq, auto* rs) { return ns->GetFileInfo(rq, rs); },
      kInline);
  s->Register<GetListingRequest, GetListingResponse>(
      GET_LISTING, "getListing", [ns](const Ctx&, const auto& rq, auto* rs) { return ns->GetListing(rq, rs); },
      kInline);
  s->Register<DeleteRequest, DeleteResponse>(
      DELETE, "delete", [ns](const Ctx& c, const auto& rq, auto*) { return ns->Delete(CallerOf(c), rq); });
  s->Register<RenameRequest, RenameResponse>(
      RENAME, "rename", [ns](const Ctx& c, const auto& rq, auto*) { return ns->Rename(CallerOf(c), rq); });
  s->Register<SetReplicationRequest, SetReplicationResponse>(
      SET_REPLICATION, "setReplication",
      [ns](const Ctx& c, const auto& rq, auto*) { return ns->SetReplication(CallerOf(c), rq); });
  s->Register<SetPermissionRequest, SetPermissionResponse>(
      SET_PERMISSION, "setPermission",
      [ns](const Ctx& c, const auto& rq, auto*) { return ns->SetPermission(CallerOf(c), rq); });
  s->Register<SetOwnerRequest, SetOwnerResponse>(
      SET_OWNER, "setOwner", [ns](const Ctx& c, const auto& rq, auto*) { return ns->SetOwner(CallerOf(c), rq); });
  s->Register<SetTimesRequest, SetTimesResponse>(
      SET_TIMES, "setTimes", [ns](const Ctx& c, const auto& rq, auto*) { return ns->SetTimes(CallerOf(c), rq); });
  s->Register<RenewLeaseRequest, RenewLeaseResponse>(
      RENEW_LEASE, "renewLease", [ns](const Ctx& c, const auto&, auto*) { return ns->RenewLease(CallerOf(c)); },
      kInline);
  s->Register<ReportBadBlocksRequest, ReportBadBlocksResponse>(
      REPORT_BAD_BLOCKS, "reportBadBlocks", [bm](const Ctx& c, const auto& rq, auto*) {
        for (const auto& r : rq.replicas()) {
          Log("nn")->warn("Client {} at {} reports a bad replica of {} on DataNode {}", c.client_name, c.peer_ip,
                          BlockName(BlockId(r.block().id())), r.datanode_uuid());
          bm->ReportBadReplica(BlockId(r.block().id()), r.block().gen_stamp(), r.datanode_uuid());
        }
        return Status::OK();
      });
  s->Register<GetContentSummaryRequest, GetContentSummaryResponse>(
      GET_CONTENT_SUMMARY, "getContentSummary",
      [ns](const Ctx&, const auto& rq, auto* rs) { return ns->GetContentSummary(rq, rs); });
  s->Register<GetStatsRequest, GetStatsResponse>(GET_STATS, "getStats", [ns](const Ctx&, const auto&, auto* rs) {
    ns->FillStats(rs);
    return Status::OK();
  });
  s->Register<GetDatanodeReportRequest, GetDatanodeReportResponse>(
      GET_DATANODE_REPORT, "getDatanodeReport", [bm](const Ctx&, const auto&, auto* rs) {
        for (auto& n : bm->DatanodeReport()) *rs->add_nodes() = std::move(n);
        return Status::OK();
      });
  s->Register<SafeModeRequest, SafeModeResponse>(SET_SAFE_MODE, "safeMode", [bm](const Ctx& c, const auto& rq, auto* rs) {
    if (rq.action() == SafeModeRequest::ENTER) bm->EnterSafeMode();
    if (rq.action() == SafeModeRequest::LEAVE) bm->LeaveSafeMode();
    if (rq.action() != SafeModeRequest::GET) {
      Log("nn")->info("Safe mode {} requested by {} at {}", rq.action() == SafeModeRequest::ENTER ? "enter" : "leave",
                      c.user, c.peer_ip);
    }
    rs->set_on(bm->InSafeMode());
    rs->set_status(bm->SafeModeStatus());
    return Status::OK();
  });
  s->Register<SetDatanodeAdminStateRequest, SetDatanodeAdminStateResponse>(
      SET_DATANODE_ADMIN_STATE, "setDatanodeAdminState", [bm](const Ctx& c, const auto& rq, auto* rs) -> Status {
        Log("nn")->info("{} of DataNode '{}' requested by {} at {}",
                        rq.decommission() ? "Decommission" : "Recommission", rq.datanode(), c.user, c.peer_ip);
        DFS_ASSIGN_OR_RETURN(*rs, bm->SetAdminState(rq.datanode(), rq.decommission()));
        return Status::OK();
      });

  // ---- DataNode protocol ------------------------------------------------
  s->Register<RegisterDatanodeRequest, RegisterDatanodeResponse>(
      REGISTER_DATANODE, "registerDatanode", [ns, bm](const Ctx& c, const auto& rq, auto* rs) -> Status {
        if (!rq.cluster_id().empty() && rq.cluster_id() != ns->cluster_id()) {
          Log("nn")->warn("Refused DataNode {} at {}: it belongs to cluster {}, this is {}", rq.id().uuid(), c.peer_ip,
                          rq.cluster_id(), ns->cluster_id());
          return Status::PermissionDenied(fmt::format(
              "this DataNode's data belongs to cluster {}, but the NameNode at this address runs cluster {}. If the "
              "NameNode was re-created and the old blocks are no longer wanted, stop the DataNode, empty its data "
              "directories (dfs.datanode.data.dir) and start it again; otherwise point it at the NameNode of "
              "cluster {} (fs.defaultFS)",
              rq.cluster_id(), ns->cluster_id(), rq.cluster_id()));
        }
        DFS_ASSIGN_OR_RETURN(auto reg, bm->Register(rq.id(), rq.stats(), c.peer_ip));
        *rs->mutable_registered() = std::move(reg);
        rs->set_cluster_id(ns->cluster_id());
        return Status::OK();
      });
  s->Register<HeartbeatRequest, HeartbeatResponse>(HEARTBEAT, "heartbeat",
                                                   [bm](const Ctx&, const auto& rq, auto* rs) {
                                                     bm->Heartbeat(rq, rs);
                                                     return Status::OK();
                                                   });
  s->Register<BlockReportRequest, BlockReportResponse>(
      BLOCK_REPORT, "blockReport", [bm](const Ctx&, const auto& rq, auto*) {
        return bm->FullBlockReport(rq.uuid(), {rq.blocks().begin(), rq.blocks().end()});
      });
  s->Register<IncrementalBlockReportRequest, IncrementalBlockReportResponse>(
      INCREMENTAL_BLOCK_REPORT, "incrementalBlockReport", [bm](const Ctx&, const auto& rq, auto*) {
        return bm->IncrementalBlockReport(rq.uuid(), {rq.received().begin(), rq.received().end()},
                                          {rq.deleted().begin(), rq.deleted().end()});
      });
}

}  // namespace dfs::namenode
