#include "tests/support/test_env.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace nomnom::testing {

std::string DatabaseUrl() {
  for (const char* name : {"NOMNOM_TEST_DATABASE_URL", "DATABASE_URL"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return v;
  }
  FAIL("integration tests need NOMNOM_TEST_DATABASE_URL or DATABASE_URL (scripts/test.sh sets it)");
  return {};
}

std::string NatsUrl() {
  for (const char* name : {"NOMNOM_TEST_NATS_URL", "NATS_URL"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return v;
  }
  FAIL("integration tests need NOMNOM_TEST_NATS_URL or NATS_URL (scripts/test.sh sets it)");
  return {};
}

JetStreamConfig UniqueJetStreamConfig(std::string_view prefix) {
  JetStreamConfig c;
  c.url = NatsUrl();
  c.connection_name = "nomnom-tests";
  const std::string base = UniqueName(prefix);
  c.stream = base + "_MAIN";
  c.stream_subjects = base + ".>";
  c.subject_prefix = base + ".ingest";
  c.filter_subject = base + ".ingest.>";
  c.consumer = base + "_workers";
  c.dlq_stream = base + "_DLQ";
  c.dlq_subjects = base + "_dlq.>";
  c.dlq_subject_prefix = base + "_dlq";
  c.max_age_ms = 3600 * 1000;
  c.max_bytes = 64LL << 20;  // streams reserve max_bytes from the server's storage
  c.ack_wait_ms = 5000;
  c.publish_timeout_ms = 3000;
  c.api_timeout_ms = 3000;
  return c;
}

std::unique_ptr<PgConnection> Connect() {
  auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-tests");
  if (!conn.ok()) FAIL(conn.status().message());
  return std::move(conn).value();
}

PgRows Query(PgConnection& conn, std::string_view sql) {
  auto rows = conn.Exec(sql);
  if (!rows.ok()) FAIL("query failed: " << sql << "\n" << rows.status().message());
  return std::move(rows).value();
}

std::string QueryValue(PgConnection& conn, std::string_view sql) {
  PgRows rows = Query(conn, sql);
  REQUIRE(rows.rows.size() == 1);
  REQUIRE(rows.rows[0].size() == 1);
  return rows.rows[0][0].value_or("");
}

std::string UniqueName(std::string_view prefix) {
  static std::atomic<int> counter{0};
  return std::string(prefix) + "_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "nomnom-test-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  if (p == nullptr) FAIL("mkdtemp failed: " << std::strerror(errno));
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(std::string_view name, std::string_view content) const {
  std::string full = path_ + "/" + std::string(name);
  std::ofstream f(full, std::ios::binary);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  REQUIRE(f.good());
  return full;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CommandResult Run(const std::vector<std::string>& argv, std::string_view stdin_data,
                  const std::map<std::string, std::string>& env) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  REQUIRE(pipe(in_pipe) == 0);
  REQUIRE(pipe(out_pipe) == 0);
  REQUIRE(pipe(err_pipe) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  // Feed stdin and drain stdout/stderr together so neither side blocks.
  fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  CommandResult result;
  size_t written = 0;
  bool in_open = true;
  if (stdin_data.empty()) {
    close(in_pipe[1]);
    in_open = false;
  }
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    std::vector<pollfd> fds;
    if (out_open) fds.push_back({out_pipe[0], POLLIN, 0});
    if (err_open) fds.push_back({err_pipe[0], POLLIN, 0});
    if (in_open) fds.push_back({in_pipe[1], POLLOUT, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == in_pipe[1]) {
        ssize_t n = write(in_pipe[1], stdin_data.data() + written, stdin_data.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN) written = stdin_data.size();
        if (written == stdin_data.size()) {
          close(in_pipe[1]);
          in_open = false;
        }
        continue;
      }
      ssize_t n = read(p.fd, buf, sizeof buf);
      if (n <= 0) {
        close(p.fd);
        (p.fd == out_pipe[0] ? out_open : err_open) = false;
      } else {
        (p.fd == out_pipe[0] ? result.out : result.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  if (in_open) close(in_pipe[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

CommandResult RunNomnom(const std::vector<std::string>& args, std::string_view stdin_data,
                        std::map<std::string, std::string> env) {
  std::vector<std::string> argv{NOMNOM_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  if (env.find("DATABASE_URL") == env.end()) env["DATABASE_URL"] = DatabaseUrl();
  return Run(argv, stdin_data, env);
}

std::string SourcePath(std::string_view relative) {
  return std::string(NOMNOM_SOURCE_DIR) + "/" + std::string(relative);
}

}  // namespace nomnom::testing
