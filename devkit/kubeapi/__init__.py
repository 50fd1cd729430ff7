"""kubeapi: a test-only Kubernetes API server and kubelet, as devhub stands in for GitHub (dev kit, not product).

No Kubernetes API server or kubelet can run on this machine, so the dev kit serves the subset of the
API the product uses, to the official ``kubernetes`` client, unchanged, through a kubeconfig
(``server: http://127.0.0.1:PORT`` with a bearer token):

- ``/api/v1``: namespaces, pods, pods/status, pods/log (tailLines, limitBytes, timestamps, follow);
  ``/apis/batch/v1`` jobs (+status); ``/apis/networking.k8s.io/v1`` networkpolicies;
  ``/apis/apps/v1`` deployments (+status). Create, get, list (labelSelector, fieldSelector on
  metadata.name/namespace, status.phase, spec.nodeName), replace, patch (merge, strategic-merge applied
  as a merge patch, JSON patch), delete (propagationPolicy Foreground/Background/Orphan, preconditions)
  and deletecollection.
- watch=true from a resourceVersion (replayed from the history), with allowWatchBookmarks (a BOOKMARK
  every ``bookmark_interval`` seconds) and timeoutSeconds; a resourceVersion older than the history
  (``KubeAPI.compact()`` is etcd's compaction) ends the watch with an ERROR event carrying a 410
  Expired Status, as the API server does.
- Status objects for 401/404/409 (AlreadyExists, Conflict)/410/422 (Invalid, naming each field).
- Kubernetes' published 1.33 schemas (kubernetes-validate's strict set: unknown fields are errors) check
  every request body (422 otherwise) and every object, Status and list the server sends.
- Controllers in-process: Job (one pod at a time, backoffLimit, activeDeadlineSeconds ->
  DeadlineExceeded, Complete/Failed conditions, ttlSecondsAfterFinished), the garbage collector
  (foreground deletion keeps the owner with a deletionTimestamp and the foregroundDeletion finalizer
  until its pods are gone), namespace termination.
- A kubelet (``devkit.kubeapi.kubelet``) running each pod on podman through the Docker Engine API with
  every securityContext field enforced; a pod spec field it cannot enforce is refused at creation with
  a 422 naming it (``devkit.kubeapi.podspec``). Deployments are stored, not run: their status is what a
  test writes through deployments/status.

Not implemented (refused, never ignored): Jobs with completions/parallelism other than 1, Indexed
mode, pod failure/success policies, restartPolicy other than Never on this node, NetworkPolicies with
allow rules, volumes other than emptyDir, hostPath/hostNetwork, privileged, Localhost seccomp, fsGroup.
The containers of one pod do not share a network namespace. The product's tests run the same way
against a real cluster when MODELSHIP_TEST_KUBECONFIG names its kubeconfig (tests/fixtures/kubeapi.py).
"""

from devkit.kubeapi.server import KubeAPI, running_in_thread, write_kubeconfig

__all__ = ["KubeAPI", "running_in_thread", "write_kubeconfig"]
