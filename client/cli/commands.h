// The table of `dfs` commands and the functions that run them.
//
// Each command takes its options Hadoop's way (see flags.h) and then its
// operands; `Run` gets both, already checked against the counts in the table.
// The functions live in fs_commands.cc (namespace operations), copy_commands.cc
// (moving bytes), admin_commands.cc and fsck.cc (cluster administration), and
// commands.cc (help).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "client/cli/context.h"
#include "client/cli/flags.h"

namespace dfs::cli {

using Args = std::vector<std::string>;
using RunFn = int (*)(Context& ctx, const Flags& flags, const Args& args);

struct Command {
  std::string_view name;
  std::vector<std::string_view> aliases;  // copyFromLocal for put, ...
  std::string_view flags;                 // flag spec for Flags::Parse
  std::string_view usage;                 // operands and options, after the name
  std::string_view help;                  // one paragraph, for `dfs help <cmd>`
  int min_args = 0;
  int max_args = -1;  // -1: no limit
  bool needs_fs = true;
  RunFn run = nullptr;
};

// Every command, in the order `dfs help` lists them.
const std::vector<Command>& AllCommands();
// By name or alias, with or without a leading '-'; null when unknown.
const Command* FindCommand(std::string_view name);

// fs_commands.cc
int RunLs(Context& ctx, const Flags& flags, const Args& args);
int RunMkdir(Context& ctx, const Flags& flags, const Args& args);
int RunRm(Context& ctx, const Flags& flags, const Args& args);
int RunRmdir(Context& ctx, const Flags& flags, const Args& args);
int RunMv(Context& ctx, const Flags& flags, const Args& args);
int RunDu(Context& ctx, const Flags& flags, const Args& args);
int RunDf(Context& ctx, const Flags& flags, const Args& args);
int RunCount(Context& ctx, const Flags& flags, const Args& args);
int RunStat(Context& ctx, const Flags& flags, const Args& args);
int RunTest(Context& ctx, const Flags& flags, const Args& args);
int RunSetrep(Context& ctx, const Flags& flags, const Args& args);
int RunTouchz(Context& ctx, const Flags& flags, const Args& args);
int RunChmod(Context& ctx, const Flags& flags, const Args& args);
int RunChown(Context& ctx, const Flags& flags, const Args& args);
int RunChgrp(Context& ctx, const Flags& flags, const Args& args);

// copy_commands.cc
int RunPut(Context& ctx, const Flags& flags, const Args& args);
int RunAppendToFile(Context& ctx, const Flags& flags, const Args& args);
int RunGet(Context& ctx, const Flags& flags, const Args& args);
int RunCat(Context& ctx, const Flags& flags, const Args& args);
int RunTail(Context& ctx, const Flags& flags, const Args& args);
int RunCp(Context& ctx, const Flags& flags, const Args& args);
int RunGetmerge(Context& ctx, const Flags& flags, const Args& args);

// admin_commands.cc, fsck.cc
int RunAdmin(Context& ctx, const Flags& flags, const Args& args);

// job_commands.cc
int RunStreaming(Context& ctx, const Flags& flags, const Args& args);
int RunJob(Context& ctx, const Flags& flags, const Args& args);
int RunFsck(Context& ctx, const Flags& flags, const Args& args);

// mount_commands.cc
int RunMount(Context& ctx, const Flags& flags, const Args& args);
int RunUmount(Context& ctx, const Flags& flags, const Args& args);

// commands.cc
int RunHelp(Context& ctx, const Flags& flags, const Args& args);
int RunUsage(Context& ctx, const Flags& flags, const Args& args);

}  // namespace dfs::cli
