// Value types shared by the core and every plugin. Plain structs: cheap to copy, no behaviour
// beyond conversions to and from their wire names.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "paddock/hardening.h"

namespace paddock {

// Milliseconds since the Unix epoch (UTC). All stored timestamps use this.
using TimestampMs = std::int64_t;

inline TimestampMs NowMs() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using EnvMap = std::map<std::string, std::string>;

// ---- Teams and API keys --------------------------------------------------------------------

// The tenant boundary: every agent, session, key (and what hangs off them) belongs to one team,
// and nothing of one team is visible to another's keys. Installs from before teams existed
// have all their data in the team "default".
inline constexpr char kDefaultTeam[] = "default";

// What a team may use at once or per period. Unset: the install's [quotas] default (0 there:
// no limit); 0 here: no limit for this team.
struct TeamQuotas {
  std::optional<std::int64_t> sandboxes;              // sandboxes at once
  std::optional<std::int64_t> open_sessions;          // sessions neither closed nor failed
  std::optional<std::int64_t> runs_per_minute;        // messages sent in any 60 s
  std::optional<std::int64_t> tokens_per_day;         // input + output tokens, runs sent this UTC day
  std::optional<std::int64_t> cost_per_day_microusd;  // cost of runs sent this UTC day
};

struct Team {
  std::string id;
  std::string name;
  TimestampMs created_at = 0;
  // The sandbox profiles ([profiles.<name>]) the team's agents may name; empty: every one.
  std::vector<std::string> profiles;
  TeamQuotas quotas;
};

// What a key may do. Ordered: each role may do everything the ones before it may, within its
// team; kOperator works across teams (creates teams, sees everything, reads metrics).
enum class Role { kViewer, kMember, kAdmin, kOperator };

constexpr std::string_view ToString(Role r) noexcept {
  switch (r) {
    case Role::kViewer:
      return "viewer";
    case Role::kMember:
      return "member";
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
  }
  return "viewer";
}

inline std::optional<Role> ParseRole(std::string_view s) noexcept {
  for (Role r : {Role::kViewer, Role::kMember, Role::kAdmin, Role::kOperator}) {
    if (ToString(r) == s) return r;
  }
  return std::nullopt;
}

// An API key as the store keeps it: never the key itself, only its SHA-256 (hex), by which it
// is looked up, and a prefix of it for people to recognise it by.
struct ApiKey {
  std::string id;
  std::string team_id;
  std::string name;  // whose or what it is for
  Role role = Role::kViewer;
  std::string prefix;  // the key's first characters, e.g. "pdk_3k9XqL"
  std::string hash;    // hex SHA-256 of the whole key
  TimestampMs created_at = 0;
  TimestampMs expires_at = 0;  // 0: never
  TimestampMs revoked_at = 0;  // 0: not revoked
};

// A reusable definition of an agent: which harness drives it, with what model and environment.
// One of its team's secrets an agent asks for, and how its sandboxes get it.
struct SecretRef {
  std::string name;   // the secret's name: an environment variable name
  bool file = false;  // false: the variable `name`; true: the file kSandboxSecrets/`name` (0400)
  bool operator==(const SecretRef&) const = default;
};

struct Agent {
  std::string id;
  std::string team_id = kDefaultTeam;
  std::string name;
  std::string harness;              // harness plugin name, e.g. "shell"
  std::string model;                // may be empty for harnesses without a model
  std::string prompt;               // system prompt; may be empty
  EnvMap env;                       // extra environment for the sandbox (not secret)
  std::string profile = "default";  // the sandbox profile ([profiles.<name>]) its sessions get
  std::vector<SecretRef> secrets;   // which of its team's secrets its sandboxes get, and how
  std::int64_t run_timeout_seconds = 600;
  // Seconds without a run or command after which the session's sandbox is released (the
  // session is suspended; its snapshot brings it back). nullopt: the server's
  // [sessions] idle_timeout; 0: never.
  std::optional<std::int64_t> idle_timeout_seconds;
  TimestampMs created_at = 0;
  TimestampMs updated_at = 0;
};

enum class SessionStatus { kProvisioning, kReady, kRunning, kSuspended, kClosed, kFailed };

constexpr std::string_view ToString(SessionStatus s) noexcept {
  switch (s) {
    case SessionStatus::kProvisioning:
      return "provisioning";
    case SessionStatus::kReady:
      return "ready";
    case SessionStatus::kRunning:
      return "running";
    case SessionStatus::kSuspended:
      return "suspended";
    case SessionStatus::kClosed:
      return "closed";
    case SessionStatus::kFailed:
      return "failed";
  }
  return "failed";
}

inline constexpr SessionStatus kAllSessionStatuses[] = {
    SessionStatus::kProvisioning, SessionStatus::kReady,  SessionStatus::kRunning,
    SessionStatus::kSuspended,    SessionStatus::kClosed, SessionStatus::kFailed};

inline std::optional<SessionStatus> ParseSessionStatus(std::string_view s) noexcept {
  for (SessionStatus v : kAllSessionStatuses) {
    if (ToString(v) == s) return v;
  }
  return std::nullopt;
}

// One conversation with an agent. Outlives any sandbox it runs in.
// Tokens and money a model spent: one turn's (reported by its harness), a run's (all its
// attempts) or a session's (all its runs).
struct Usage {
  std::string model;  // the model that answered (the newest, when several did)
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cache_read_tokens = 0;  // input tokens served from the provider's cache
  std::optional<double> cost_usd;      // when the agent reported it
};

struct Session {
  std::string id;
  std::string agent_id;
  std::string team_id = kDefaultTeam;  // the agent's
  SessionStatus status = SessionStatus::kProvisioning;
  std::string status_reason;  // why the session is failed/closed; empty otherwise
  std::string sandbox_id;     // the sandbox currently bound, or empty
  std::int64_t last_seq = 0;  // seq of the newest event; 0 when there is none
  // The agent CLI's own id for this conversation (Claude Code's session id, Codex's thread id),
  // recorded by its harness so that a later turn resumes it; empty until one is known.
  std::string native_session_id;
  Usage usage;  // the sum over the session's runs
  TimestampMs created_at = 0;
  TimestampMs updated_at = 0;
};

enum class RunStatus { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kInterrupted };

constexpr std::string_view ToString(RunStatus s) noexcept {
  switch (s) {
    case RunStatus::kQueued:
      return "queued";
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kSucceeded:
      return "succeeded";
    case RunStatus::kFailed:
      return "failed";
    case RunStatus::kCancelled:
      return "cancelled";
    case RunStatus::kInterrupted:
      return "interrupted";
  }
  return "failed";
}

inline std::optional<RunStatus> ParseRunStatus(std::string_view s) noexcept {
  for (RunStatus v : {RunStatus::kQueued, RunStatus::kRunning, RunStatus::kSucceeded, RunStatus::kFailed,
                      RunStatus::kCancelled, RunStatus::kInterrupted}) {
    if (ToString(v) == s) return v;
  }
  return std::nullopt;
}

constexpr bool IsTerminal(RunStatus s) noexcept {
  return s == RunStatus::kSucceeded || s == RunStatus::kFailed || s == RunStatus::kCancelled;
}

// One turn: a user message handed to the harness.
struct Run {
  std::string id;
  std::string session_id;
  RunStatus status = RunStatus::kQueued;
  std::string content;           // the user message
  std::optional<int> exit_code;  // set when the harness reported one
  std::string error;             // why it failed; empty otherwise
  int attempt = 0;               // how many times a worker has claimed it
  Usage usage;                   // what the model spent on it, over all attempts
  TimestampMs created_at = 0;
  TimestampMs started_at = 0;   // 0 until claimed
  TimestampMs finished_at = 0;  // 0 until terminal
  // The lease: while running, the run belongs to `lease_owner` until `lease_expires_at`
  // (milliseconds, the store's clock). `generation` grows by one at every claim and every
  // expiry; a worker's writes for the run carry the generation it claimed, and the store
  // refuses them once it has moved on (fencing).
  std::int64_t generation = 0;
  std::string lease_owner;
  TimestampMs lease_expires_at = 0;
  bool cancel_requested = false;  // someone asked the run to stop; its worker does so
};

// A worker's proof of ownership of a running run: its id and the generation it was claimed at.
struct RunLease {
  std::string run_id;
  std::int64_t generation = 0;
};

// An append-only, per-session record. `seq` starts at 1 and has no gaps.
struct Event {
  std::string session_id;
  std::int64_t seq = 0;
  std::string run_id;  // empty for session-level events
  std::string type;    // e.g. "message.user", "output", "run.finished"
  std::string data;    // a JSON object, as text
  TimestampMs created_at = 0;
};

// What a caller asks the store to append; the store assigns seq and created_at.
struct NewEvent {
  std::string run_id;
  std::string type;
  std::string data = "{}";
  // Non-zero: a worker's write, fenced. The store appends only while run `run_id` is running
  // under this generation, and fails with kAborted otherwise.
  std::int64_t generation = 0;
};

// An Idempotency-Key as a store records it: the first request with (scope, key) creates the
// resource; later ones with the same request_hash get that resource back, and ones with
// another hash are refused. An empty key means "not idempotent".
struct IdempotencyKey {
  std::string scope;         // what the key is unique within, e.g. "sessions"
  std::string key;           // as the client sent it
  std::string request_hash;  // a digest of the request it came with
};

struct IdempotencyRecord {
  std::string request_hash;
  std::string resource_id;  // the session or run the first request created
  TimestampMs created_at = 0;
};

// What the lease sweeper does with runs whose lease expired.
struct SweepOptions {
  int max_attempts = 3;  // a run interrupted on its max_attempts-th attempt fails instead
  bool all = false;      // treat every running run as expired (a single-process store at start)
  std::string reason = "the worker running it stopped heartbeating";
};

template <class T>
struct Page {
  std::vector<T> items;
  std::string next_cursor;  // empty when there is nothing more
};

struct PageRequest {
  int limit = 50;      // 1..1000
  std::string cursor;  // from a previous Page::next_cursor; empty for the first page
};

struct SessionFilter {
  std::string team_id;                  // empty: any team
  std::string agent_id;                 // empty: any agent
  std::optional<SessionStatus> status;  // nullopt: any status
  PageRequest page;
};

// One entry of the audit log: who (key, team, source address) did what (action, resource),
// in which request, and how it ended. Entries are only ever appended (and pruned by age).
struct AuditEvent {
  std::int64_t id = 0;  // assigned by the store, increasing
  TimestampMs at = 0;
  std::string team_id;     // the team acted in or on; empty when no key was valid
  std::string key_id;      // empty when no key was valid
  std::string source;      // the client's address
  std::string request_id;  // X-Request-Id of the request
  std::string action;      // "POST /api/agents", "auth.failed", "key.new_address"
  std::string resource;    // the id acted on, when there is one
  int status = 0;          // the HTTP status answered
  std::string outcome;     // "ok", "denied" (401/403/404 before the handler) or "error"
  std::string detail;      // one line, never a secret
};

struct AuditFilter {
  std::string team_id;  // empty: every team's (and entries of no team)
  PageRequest page;     // newest first; the cursor is an entry's id
};

// ---- Sandboxes ----------------------------------------------------------------------------

// Resource limits of a sandbox; 0 means "no limit".
struct SandboxLimits {
  std::int64_t memory_bytes = 0;  // all processes of the sandbox together
  double cpus = 0;                // CPU time, in cores (0.5: half a core)
  std::int64_t pids = 0;          // processes and threads at once
  std::int64_t disk_bytes = 0;    // the workspace (and scratch space such as /tmp)
};

// What the core asks a provider to create. A provider keys durable per-session data (such as
// the workspace) on session_id, so a sandbox re-created for the same session finds it again.
// An empty session_id asks for a warm sandbox: started, but bound to no session until Claim.
// A host directory seen read-only inside a sandbox.
struct SandboxMount {
  std::string host_path;
  std::string sandbox_path;
};

struct SandboxSpec {
  std::string session_id;
  std::string agent_id;
  std::string team_id;  // may be empty; a provider may place a team's sandboxes apart
  std::string profile = "default";
  SandboxLimits limits;
  // Egress: the host directory holding the control plane's proxy socket "egress.sock", which
  // the provider makes reachable inside (paddock-runtime serves it as 127.0.0.1:egress_port).
  // With the vault on it also holds kEgressCaBundle, the system's trust store plus the
  // install's CA, which a provider makes the sandbox's system trust store
  // (/etc/ssl/certs/ca-certificates.crt); paddock-runtime points the usual variables at it.
  // Empty: the sandbox has no way out at all.
  std::string egress_dir;
  int egress_port = 3128;
  bool host_network = false;  // share the host's network (no isolation; an explicit choice)
  EnvMap labels;              // free-form, recorded by the provider for listing
  // Host directories the provider mounts read-only inside (the harnesses' tool installs,
  // at kSandboxTools). A provider that cannot mount host paths bakes them into its image.
  std::vector<SandboxMount> ro_mounts;
  // The syscall filter and runtime class of the sandbox's profile (paddock/hardening.h).
  SandboxHardening hardening;
};

enum class SandboxState { kStarting, kRunning, kGone };

constexpr std::string_view ToString(SandboxState s) noexcept {
  switch (s) {
    case SandboxState::kStarting:
      return "starting";
    case SandboxState::kRunning:
      return "running";
    case SandboxState::kGone:
      return "gone";
  }
  return "gone";
}

// Where the core reaches a sandbox's paddock-runtime.
struct RuntimeEndpoint {
  std::string address;  // "unix:/path/to/socket" or "tcp:host:port"
  std::string token;    // the per-sandbox bearer token; secret: never rendered or logged
};

struct SandboxInfo {
  std::string id;
  std::string session_id;  // empty for a warm sandbox not yet claimed
  std::string profile;
  SandboxState state = SandboxState::kGone;
  std::string detail;  // provider-specific, one line (e.g. "pid 4242")
  TimestampMs created_at = 0;
  RuntimeEndpoint runtime;
  std::string egress_dir;  // as in the spec it was created from
  // The limits in force and how each is enforced, e.g. {"memory", "268435456 (cgroup v1)"}.
  std::vector<std::pair<std::string, std::string>> limits;
};

enum class ExecStream { kStdout, kStderr };

struct ExecRequest {
  std::vector<std::string> argv;         // REQUIRES: non-empty; argv[0] is looked up in PATH
  EnvMap env;                            // the whole environment, besides PATH/HOME defaults
  std::string cwd = "/workspace";        // inside the sandbox
  std::chrono::milliseconds timeout{0};  // 0: no limit
  std::string stdin_data;                // written to the command's stdin, which is then closed
};

struct ExecResult {
  int exit_code = -1;      // the process's exit code, or 128+signal when it was killed
  bool timed_out = false;  // killed because the timeout passed
  bool cancelled = false;  // killed because the observer asked for it
};

// Receives an exec's output as it is produced.
// Thread safety: calls for one exec come from one thread, in order.
class ExecObserver {
 public:
  virtual ~ExecObserver() = default;
  // A chunk of output; chunks are not aligned to lines.
  virtual void OnOutput(ExecStream stream, std::string_view chunk) noexcept = 0;
  // Asked after each OnOutput (the observer's own state changes only there); true kills the
  // exec. A run's cancellation (its TurnContext's Cancelled()) reaches a command that prints
  // nothing without it: the host kills the command as soon as the run is cancelled.
  virtual bool Cancelled() const noexcept { return false; }
};

// ---- Durability ---------------------------------------------------------------------------

// Where every sandbox keeps the session's files and the agent's home directory. Both are
// paddock-runtime roots; a harness's native resume state lives under one of them.
inline constexpr char kSandboxWorkspace[] = "/workspace";
inline constexpr char kSandboxHome[] = "/home/paddock";
// Where the tools harnesses declare (SandboxNeeds) are installed, read-only, inside a sandbox.
inline constexpr char kSandboxTools[] = "/opt/paddock/tools";

// One stored snapshot of a session: an archive (tar, optionally gzip) of the workspace and the
// harness's native resume state, taken after a run.
struct SnapshotInfo {
  std::string session_id;
  std::int64_t version = 0;  // 1, 2, 3, ... per session; assigned by the store
  std::string run_id;        // the run after which it was taken
  std::int64_t size_bytes = 0;
  std::string sha256;              // of the archive, hex
  bool gzip = false;               // the archive is gzip-compressed
  std::vector<std::string> paths;  // what it holds: absolute paths inside the sandbox
  bool workspace = false;          // kSandboxWorkspace is among `paths`
  bool native = false;             // every native-state path of the harness is among `paths`
  std::string omitted;             // what was left out and why; empty when complete
  TimestampMs created_at = 0;
};

// A message of the conversation as a harness sees it when it rehydrates a new sandbox.
struct TranscriptMessage {
  std::string role;  // "user" or "assistant"
  std::string run_id;
  std::string content;              // the message, or the run's output
  std::optional<RunStatus> status;  // assistant messages: how the run ended
};

// What a harness is told about the turn it is asked to run.
struct TurnResume {
  // An earlier attempt of this run was cut off (its worker, the server or its sandbox died);
  // the sandbox was rolled back to the last snapshot before this attempt.
  bool resuming = false;
  std::string reason;  // why the earlier attempt ended, when resuming
  // How the sandbox got the session's state: "snapshot" (restored), "transcript" (no
  // snapshot: the harness rehydrated it), or "" (the sandbox carried on, or nothing to restore).
  std::string restored;
  std::int64_t snapshot_version = 0;  // the restored snapshot's version
};

// ---- Secrets ------------------------------------------------------------------------------

// Where file secrets (SecretRef::file) are written inside a sandbox: on /tmp, which no
// snapshot holds, and rewritten by every bind of a session to its sandbox.
inline constexpr char kSandboxSecrets[] = "/tmp/paddock-secrets";

// In SandboxSpec::egress_dir with the vault on: the trust bundle (system + the install's CA)
// and the CA certificate alone.
inline constexpr char kEgressCaBundle[] = "ca-bundle.crt";
inline constexpr char kEgressCaFile[] = "ca.crt";
// Where they are written inside a sandbox that reaches a remote egress proxy ([egress] remote:
// Kubernetes pods, which get no egress directory): on /tmp, rewritten by every bind.
inline constexpr char kSandboxEgressTrust[] = "/tmp/paddock-egress";

// A vault entry: a team secret bound to the hosts it may be sent to. A sandbox whose agent
// names it gets a placeholder (kVaultPlaceholderPrefix + a value unique to the session and
// the secret) instead of the value, and the egress proxy puts the value in, in the place the
// binding says, only on requests to those hosts. Not secret itself, but sealed with the
// value: a binding changed in the store by anyone without the key does not open.
inline constexpr char kVaultPlaceholderPrefix[] = "pdk_ph_";
inline constexpr size_t kVaultPlaceholderBytes = 7 + 48;  // the prefix and 48 hex digits

enum class VaultForm {
  kHeader,  // the header `field` becomes `format` with {} replaced by the value
  kBasic,   // inside "Authorization: Basic": the placeholder as user name or password
  kQuery,   // the query parameter `field` of the request target
};

struct VaultBinding {
  // "api.example.com" (port 443), "*.example.com" (its subdomains, 443), "host:port",
  // "host:*". Empty: not a vault entry, the sandbox gets the value itself.
  std::vector<std::string> hosts;
  VaultForm form = VaultForm::kHeader;
  std::string field;                // the header (kHeader) or the query parameter (kQuery)
  std::string format = "{}";        // kHeader: the header's value; {} is the secret
  std::vector<std::string> agents;  // agent ids that may use it; empty: every agent of the team
  bool bound() const { return !hosts.empty(); }
  bool operator==(const VaultBinding&) const = default;
};

struct SecretScope {
  std::string team_id;
  std::string agent_id;
  std::string session_id;
  std::vector<SecretRef> wanted;  // the agent's SecretRefs (team secrets are given only when named)
};

struct Secret {
  std::string name;          // environment variable name inside the sandbox
  std::string value;         // never logged, never returned by the API
  bool file = false;         // written to kSandboxSecrets/<name> instead of the environment
  std::int64_t version = 0;  // the team secret's version; 0 for secrets without one
  VaultBinding vault;        // bound: a vault entry (the sandbox gets a placeholder)
};

// A team secret as the API shows it: never its value.
struct SecretInfo {
  std::string team_id;
  std::string name;
  std::int64_t version = 0;  // 1 when set first, +1 on each change
  TimestampMs created_at = 0;
  TimestampMs updated_at = 0;
  VaultBinding vault;  // bound: a vault entry
};

// A team secret as a store keeps it for the SecretInjector that sealed it: the store sees
// only `sealed`, which the injector encrypted (with the key `key_id`).
struct SealedSecret {
  std::string team_id;
  std::string name;
  std::int64_t version = 0;
  std::string key_id;
  std::string sealed;
  TimestampMs created_at = 0;
  TimestampMs updated_at = 0;
};

}  // namespace paddock
