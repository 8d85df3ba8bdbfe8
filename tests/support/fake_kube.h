// A fake Kubernetes API server for the sandbox-k8s tests (there is no cluster on these
// machines). It behaves like the real one where the plugin depends on it:
//  - REST paths of the core group (secrets, persistentvolumeclaims), of networking.k8s.io/v1
//    networkpolicies and of the agent-sandbox CRDs (v1beta1), namespaced and cluster-wide
//    lists; creating in a namespace that does not exist (when the namespaces are listed);
//  - bearer-token auth (401), HTTPS with its own CA;
//  - resourceVersion on every write, optimistic locking (409 Conflict), 404 NotFound,
//    409 AlreadyExists, 422 Invalid, 400 BadRequest, 415, all as Status objects;
//  - every custom resource validated against the OpenAPI v3 schema of the real CRDs
//    (required fields, types, enums, patterns, bounds); unknown fields pruned, or refused with
//    fieldValidation=Strict; apiVersion/kind must match the URL;
//  - the pod proxy subresource (pods/NAME:PORT/proxy/PATH), streaming, Authorization stripped;
//  - the status subresource (status ignored on the main resource, only status on /status);
//  - merge patch, label selectors (=, ==, !=, key, !key) and field selectors
//    (metadata.name, metadata.namespace);
//  - watches as a chunked stream of JSON lines from a resourceVersion, bookmarks, ERROR 410
//    Expired for a version older than the kept history (Compact());
//  - deletion with propagationPolicy (Foreground keeps the owner until dependents are gone)
//    and garbage collection through ownerReferences.
// A simulated agent-sandbox controller and kubelet run inside: warm pools are filled, claims
// adopt a warm Sandbox or get a cold one, and each Sandbox's pod is a real paddock-runtime in a
// bubblewrap jail on a loopback address (127.x.y.z) standing for the pod IP, with the pod
// spec's secret, persistentVolumeClaim and emptyDir volumes mounted where the spec says.
// Not modelled: CEL validation rules, strategic merge patch, server-side apply, v1alpha1.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <Poco/JSON/Object.h>

#include "paddock/status.h"

namespace paddock::testing {

struct FakeKubeOptions {
  std::string crd_dir;   // the agent-sandbox CRD YAML files
  std::string data_dir;  // pods' volumes, the TLS files
  std::string runtime;   // the paddock-runtime binary the "pods" run
  std::string token = "fake-kube-token-0123456789";
  bool tls = true;
  std::size_t history = 10000;  // events a watch can start from
  std::chrono::milliseconds bookmark_interval{1000};
  // The namespaces that exist; a create elsewhere is 404 `namespaces "NS" not found`, as the
  // API answers. Empty: every namespace exists.
  std::vector<std::string> namespaces;
};

class FakeKube {
 public:
  explicit FakeKube(FakeKubeOptions options);
  ~FakeKube();

  Status Start();
  void Stop();

  std::string server() const;   // "https://127.0.0.1:PORT"
  std::string ca_file() const;  // the server certificate (self-signed: its own CA)
  // A kubeconfig for this server with `token` (default: the accepted one).
  std::string WriteKubeconfig(const std::string& path, const std::string& token = "") const;

  // Creates an object as `kubectl create` would (same validation as the API); the error
  // message when refused.
  Status Create(const std::string& json);
  Poco::JSON::Object::Ptr Get(const std::string& plural, const std::string& ns,
                              const std::string& name) const;
  std::vector<Poco::JSON::Object::Ptr> List(const std::string& plural, const std::string& ns) const;

  // Forgets the event history: watches from an older resourceVersion get 410 Expired.
  void Compact();
  // Ends every open watch stream (as an API server restart does).
  void DropWatches();
  // The processes of the pod of Sandbox `name` die (as if the node lost it).
  void KillPod(const std::string& ns, const std::string& name);
  int RunningPods() const;
  // Server-side time from each claim's creation to its first Ready=True, in ms (what the
  // simulated controller and kubelet take, without the client).
  std::vector<double> ClaimReadyMs() const;
  // Every request as "VERB path?query", and the bodies of writes, in order.
  std::vector<std::string> Requests() const;
  std::vector<std::string> Bodies() const;
  void ClearLog();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The documents of a YAML file (a manifest), each as JSON, with YAML 1.1 scalar typing as
// kubectl applies it.
std::vector<std::string> YamlDocumentsAsJson(const std::string& path);

}  // namespace paddock::testing
