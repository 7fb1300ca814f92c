// The larmor command line. Subcommands live in their own files (info.cpp, demo.cpp, ...) and register
// themselves through add_*_command(app); every failure is reported on stderr with a non-zero exit.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "tools/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"larmor: NMR shift prediction and spectrum-structure alignment engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("larmor ") + larmor::cli::kVersion);
  larmor::cli::add_info_command(app);
  larmor::cli::add_demo_command(app);
  larmor::cli::add_prepare_command(app);
  larmor::cli::add_train_command(app);
  larmor::cli::add_predict_command(app);
  larmor::cli::add_assign_command(app);
  larmor::cli::add_retrieve_command(app);
  larmor::cli::add_export_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "larmor: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
