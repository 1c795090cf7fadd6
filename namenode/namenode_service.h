// The NameNode's RPC surface: binds every method of NameNodeMethod
// (proto/namenode.proto) to the Namesystem and the BlockManager.
#pragma once

namespace dfs::rpc {
class RpcServer;
}

namespace dfs::namenode {

class BlockManager;
class Namesystem;

void RegisterNameNodeService(rpc::RpcServer* server, Namesystem* ns, BlockManager* blocks);

}  // namespace dfs::namenode
