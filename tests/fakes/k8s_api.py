"""FAKE Kubernetes API server for tests: a small HTTP server implementing the endpoints the official
`kubernetes` Python client calls when Flywheel launches and watches training (pods, pod logs, Services,
batch/v1 Jobs, NetworkPolicies). No Kubernetes API server can run here; this fake stands in for one and is
named as such.

The "kubelet" of the fake plays a behaviour per pod, picked by the test:
  run               runs `script` (a local command) with the pod's env; its output is the pod log
                    (with RFC3339 timestamps when asked), exit 0 -> Succeeded, else Failed/Error
  oom               Running, prints a few lines, then Failed: OOMKilled, exit code 137
  image_pull_backoff Pending forever, container waiting: ImagePullBackOff
  hang              Running forever with no output, until deleted
Jobs (completionMode Indexed) create one pod per completion index, like the Job controller; PyTorchJobs
(kubeflow.org/v1) create a master and worker pods with PET_* env, like the Kubeflow training operator.
Deleting a pod ends its log streams and kills its process. Every request is recorded in `requests`.

A stalled API server (accepts connections, never answers) is played with `stall_after`:
  "pod-created"  once a pod has been created, every later request hangs without an answer
  "log-stream"   once a followed log stream opens, it goes silent and every later request hangs
Hung requests are recorded in `stalled_requests` and released (connection closed) when the server stops.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakePod:
    def __init__(self, server: FakeKubernetesAPI, body: dict, namespace: str) -> None:
        self.server = server
        self.body = body
        self.namespace = namespace
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        self.name = meta["name"]
        self.container = body["spec"]["containers"][0]
        self.log: list[tuple[str, str]] = []  # (timestamp, line)
        self.deleted = threading.Event()
        self.process: subprocess.Popen | None = None
        self._status("Pending", waiting=("ContainerCreating", ""))
        self.thread = threading.Thread(target=self._play, daemon=True)
        self.thread.start()

    # -- status helpers --
    def _status(self, phase: str, *, waiting=None, running=False, terminated=None, ready=False) -> None:
        state: dict[str, Any] = {}
        if waiting:
            state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
        if running:
            state["running"] = {"startedAt": _now()}
        if terminated:
            reason, code = terminated
            tail = "\n".join(line for _, line in self.log[-10:])
            state["terminated"] = {
                "reason": reason,
                "exitCode": code,
                "message": tail,
                "startedAt": _now(),
                "finishedAt": _now(),
            }
        self.body["status"] = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": self.container["name"],
                    "image": self.container.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "state": state,
                }
            ],
            "startTime": _now(),
        }

    def _append(self, line: str) -> None:
        with self.server.lock:
            self.log.append((_stamp(), line))

    def _play(self) -> None:
        behaviour = self.server.behaviour
        time.sleep(0.2)
        if behaviour == "image_pull_backoff":
            image = self.container.get("image")
            self._status("Pending", waiting=("ImagePullBackOff", f'Back-off pulling image "{image}"'))
            return
        self._status("Running", running=True, ready=True)
        if behaviour == "hang":
            return
        if behaviour == "oom":
            for i in range(3):
                self._append(f"epoch {i + 1}: allocating a bigger batch")
                time.sleep(0.1)
            self._status("Failed", terminated=("OOMKilled", 137))
            self.server.pod_finished(self)
            return
        env = {**os.environ, **{e["name"]: e.get("value", "") for e in self.container.get("env", []) if "value" in e}}
        self.process = subprocess.Popen(
            self.server.script, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._append(line.rstrip("\n"))
        code = self.process.wait()
        if self.deleted.is_set():
            return
        if code == 0:
            self._status("Succeeded", terminated=("Completed", 0))
        else:
            self._status("Failed", terminated=("Error", code))
        self.server.pod_finished(self)

    def delete(self) -> None:
        self.deleted.set()
        if self.process and self.process.poll() is None:
            self.process.kill()

    @property
    def finished(self) -> bool:
        return self.body["status"]["phase"] in ("Succeeded", "Failed") or self.deleted.is_set()


class FakeKubernetesAPI:
    """Start with `with FakeKubernetesAPI() as api:`; `api.kubeconfig(path)` writes a kubeconfig for it."""

    def __init__(self, behaviour: str = "run", script: list[str] | None = None) -> None:
        self.behaviour = behaviour
        self.script = script or ["true"]
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.jobs: dict[tuple[str, str], dict] = {}
        self.services: dict[tuple[str, str], dict] = {}
        self.pytorchjobs: dict[tuple[str, str], dict] = {}
        self.network_policies: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.created: list[tuple[str, str]] = []  # (kind, name)
        self.deleted: list[tuple[str, str]] = []
        self.stall_after: str | None = None  # "pod-created" | "log-stream": see the module docstring
        self.stalled = threading.Event()
        self.released = threading.Event()
        self.stalled_requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeKubernetesAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        for pod in list(self.pods.values()):
            pod.delete()
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "flywheel"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    # -- object logic --
    def create_pod(self, namespace: str, body: dict) -> FakePod:
        pod = FakePod(self, body, namespace)
        with self.lock:
            self.pods[(namespace, pod.name)] = pod
            self.created.append(("Pod", pod.name))
        return pod

    def delete_pod(self, namespace: str, name: str) -> FakePod | None:
        with self.lock:
            pod = self.pods.pop((namespace, name), None)
            if pod:
                self.deleted.append(("Pod", name))
        if pod:
            pod.delete()
        return pod

    def create_job(self, namespace: str, body: dict) -> dict:
        name = body["metadata"]["name"]
        body.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
        body["status"] = {"active": 0, "succeeded": 0, "failed": 0}
        with self.lock:
            self.jobs[(namespace, name)] = body
            self.created.append(("Job", name))
        spec = body["spec"]
        for index in range(spec.get("completions", 1)):
            template = copy.deepcopy(spec["template"])
            meta = template.setdefault("metadata", {})
            meta["name"] = f"{name}-{index}-{uuid.uuid4().hex[:5]}"
            meta["labels"] = {
                **meta.get("labels", {}),
                "job-name": name,
                "batch.kubernetes.io/job-completion-index": str(index),
            }
            meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
            meta["ownerReferences"] = [
                {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": body["metadata"]["uid"]}
            ]
            container = template["spec"]["containers"][0]
            container.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "value": str(index)})
            self.create_pod(namespace, template)
        return body

    def create_pytorchjob(self, namespace: str, body: dict) -> dict:
        """Like the Kubeflow training operator: one pod per replica, PET_* env for torchrun."""
        name = body["metadata"]["name"]
        body["metadata"].setdefault("uid", str(uuid.uuid4()))
        body["status"] = {"conditions": [{"type": "Created", "status": "True"}]}
        with self.lock:
            self.pytorchjobs[(namespace, name)] = body
            self.created.append(("PyTorchJob", name))
        replicas = body["spec"]["pytorchReplicaSpecs"]
        nodes = sum(r["replicas"] for r in replicas.values())
        rank = 0
        for kind in ("Master", "Worker"):
            for index in range(replicas.get(kind, {}).get("replicas", 0)):
                template = copy.deepcopy(replicas[kind]["template"])
                meta = template.setdefault("metadata", {})
                meta["name"] = f"{name}-{kind.lower()}-{index}"
                meta["labels"] = {
                    **meta.get("labels", {}),
                    "training.kubeflow.org/job-name": name,
                    "training.kubeflow.org/replica-type": kind.lower(),
                    "training.kubeflow.org/replica-index": str(index),
                }
                owner = {
                    "apiVersion": "kubeflow.org/v1",
                    "kind": "PyTorchJob",
                    "name": name,
                    "uid": body["metadata"]["uid"],
                }
                meta["ownerReferences"] = [owner]
                env = template["spec"]["containers"][0].setdefault("env", [])
                env += [{"name": "PET_NNODES", "value": str(nodes)}, {"name": "PET_NODE_RANK", "value": str(rank)}]
                rank += 1
                self.create_pod(namespace, template)
        return body

    def delete_pytorchjob(self, namespace: str, name: str) -> dict | None:
        with self.lock:
            job = self.pytorchjobs.pop((namespace, name), None)
            if job:
                self.deleted.append(("PyTorchJob", name))
            owned = [
                p
                for p in self.pods.values()
                if any(o["name"] == name for o in p.body["metadata"].get("ownerReferences", []))
            ]
        for pod in owned:
            self.delete_pod(pod.namespace, pod.name)
        return job

    def pod_finished(self, pod: FakePod) -> None:
        owners = pod.body["metadata"].get("ownerReferences", [])
        if not owners:
            return
        if owners[0]["kind"] == "PyTorchJob":
            with self.lock:
                job = self.pytorchjobs.get((pod.namespace, owners[0]["name"]))
                if not job:
                    return
                phases = [
                    p.body["status"]["phase"]
                    for p in self.pods.values()
                    if any(o["name"] == owners[0]["name"] for o in p.body["metadata"].get("ownerReferences", []))
                ]
                if "Failed" in phases:
                    job["status"]["conditions"].append(
                        {"type": "Failed", "status": "True", "message": f"pod {pod.name} failed"}
                    )
                elif phases and all(ph == "Succeeded" for ph in phases):
                    job["status"]["conditions"].append({"type": "Succeeded", "status": "True"})
            return
        with self.lock:
            job = self.jobs.get((pod.namespace, owners[0]["name"]))
            if not job:
                return
            status = job["status"]
            if pod.body["status"]["phase"] == "Succeeded":
                status["succeeded"] += 1
            else:
                status["failed"] += 1
            if status["failed"] > job["spec"].get("backoffLimit", 6):
                status["conditions"] = [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                    }
                ]
            elif status["succeeded"] >= job["spec"].get("completions", 1):
                status["conditions"] = [{"type": "Complete", "status": "True"}]

    def delete_job(self, namespace: str, name: str) -> dict | None:
        with self.lock:
            job = self.jobs.pop((namespace, name), None)
            if job:
                self.deleted.append(("Job", name))
            owned = [
                p
                for p in self.pods.values()
                if any(o["name"] == name for o in p.body["metadata"].get("ownerReferences", []))
            ]
        for pod in owned:  # propagation: the Job's pods go with it
            self.delete_pod(pod.namespace, pod.name)
        return job


_LABEL_SELECTOR = re.compile(r"^([^=,]+)=([^,]*)$")


def _matches(labels: dict, selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        m = _LABEL_SELECTOR.match(term.strip())
        if m and labels.get(m.group(1)) != m.group(2):
            return False
    return True


def _handler(api: FakeKubernetesAPI):
    pod_re = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log|/status)?$")
    svc_re = re.compile(r"^/api/v1/namespaces/([^/]+)/services(?:/([^/]+))?$")
    job_re = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?(/status)?$")
    ptj_re = re.compile(r"^/apis/kubeflow.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/]+))?$")
    netpol_re = re.compile(r"^/apis/networking.k8s.io/v1/namespaces/([^/]+)/networkpolicies(?:/([^/]+))?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # streamed logs end when the connection closes

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, kind: str, name: str) -> None:
            self._send(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "message": f'{kind} "{name}" not found',
                    "code": 404,
                },
            )

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _route(self, method: str) -> None:
            parsed = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            path = parsed.path
            if api.stalled.is_set():  # a stalled API server: the request hangs, then the connection drops
                api.stalled_requests.append((method, path))
                api.released.wait()
                self.close_connection = True
                return
            api.requests.append((method, path))
            if m := pod_re.match(path):
                return self._pods(method, m.group(1), m.group(2), m.group(3), query)
            if m := job_re.match(path):
                return self._jobs(method, m.group(1), m.group(2), query)
            if m := ptj_re.match(path):
                return self._pytorchjobs(method, m.group(1), m.group(2))
            if m := svc_re.match(path):
                return self._services(method, m.group(1), m.group(2))
            if m := netpol_re.match(path):
                return self._network_policies(method, m.group(1), m.group(2))
            self._send(404, {"kind": "Status", "status": "Failure", "code": 404, "message": f"fake: no route {path}"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _pods(self, method, ns, name, sub, query) -> None:
            if name is None:
                if method == "POST":
                    pod = api.create_pod(ns, self._body())
                    self._send(201, pod.body)
                    if api.stall_after == "pod-created":
                        api.stalled.set()
                    return
                with api.lock:
                    items = [
                        p.body
                        for (n, _), p in api.pods.items()
                        if n == ns and _matches(p.body["metadata"].get("labels", {}), query.get("labelSelector"))
                    ]
                return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
            pod = api.pods.get((ns, name))
            if method == "DELETE":
                pod = api.delete_pod(ns, name)
                return self._send(200, pod.body) if pod else self._not_found("pods", name)
            if pod is None:
                return self._not_found("pods", name)
            if sub == "/log":
                return self._log(pod, query)
            return self._send(200, pod.body)

        def _log(self, pod: FakePod, query: dict) -> None:
            follow = query.get("follow") in ("true", "True", "1")
            stamps = query.get("timestamps") in ("true", "True", "1")
            tail = int(query["tailLines"]) if "tailLines" in query else None
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            with api.lock:
                lines = list(pod.log)
            if tail is not None:
                lines = lines[-tail:]
            sent = len(pod.log) if tail is not None else 0
            try:
                for ts, line in lines:
                    self.wfile.write(((f"{ts} " if stamps else "") + line + "\n").encode())
                self.wfile.flush()
                if tail is not None or not follow:
                    return
                if api.stall_after == "log-stream":
                    api.stalled.set()
                sent = len(lines)
                while True:
                    if api.stalled.is_set():  # silent from now on, like every other request
                        api.released.wait()
                        return
                    with api.lock:
                        fresh = pod.log[sent:]
                    for ts, line in fresh:
                        self.wfile.write(((f"{ts} " if stamps else "") + line + "\n").encode())
                    sent += len(fresh)
                    self.wfile.flush()
                    if pod.finished and sent >= len(pod.log):
                        return  # container exited or pod deleted: the API server ends the stream
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                return

        def _jobs(self, method, ns, name, query) -> None:
            if name is None:
                if method == "POST":
                    return self._send(201, api.create_job(ns, self._body()))
                with api.lock:
                    items = [j for (n, _), j in api.jobs.items() if n == ns]
                return self._send(200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items})
            if method == "DELETE":
                job = api.delete_job(ns, name)
                if job is None:
                    return self._not_found("jobs.batch", name)
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
            with api.lock:
                job = api.jobs.get((ns, name))
            return self._send(200, job) if job else self._not_found("jobs.batch", name)

        def _pytorchjobs(self, method, ns, name) -> None:
            if name is None and method == "POST":
                return self._send(201, api.create_pytorchjob(ns, self._body()))
            if method == "DELETE":
                job = api.delete_pytorchjob(ns, name)
                if job is None:
                    return self._not_found("pytorchjobs.kubeflow.org", name)
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
            with api.lock:
                job = api.pytorchjobs.get((ns, name))
            return self._send(200, job) if job else self._not_found("pytorchjobs.kubeflow.org", name)

        def _services(self, method, ns, name) -> None:
            if method == "POST":
                body = self._body()
                with api.lock:
                    api.services[(ns, body["metadata"]["name"])] = body
                    api.created.append(("Service", body["metadata"]["name"]))
                return self._send(201, body)
            if method == "DELETE":
                with api.lock:
                    svc = api.services.pop((ns, name), None)
                    if svc:
                        api.deleted.append(("Service", name))
                if svc is None:
                    return self._not_found("services", name)
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
            svc = api.services.get((ns, name))
            return self._send(200, svc) if svc else self._not_found("services", name)

        def _network_policies(self, method, ns, name) -> None:
            if method == "POST":
                body = self._body()
                with api.lock:
                    api.network_policies[(ns, body["metadata"]["name"])] = body
                    api.created.append(("NetworkPolicy", body["metadata"]["name"]))
                return self._send(201, body)
            if method == "DELETE":
                with api.lock:
                    policy = api.network_policies.pop((ns, name), None)
                    if policy:
                        api.deleted.append(("NetworkPolicy", name))
                if policy is None:
                    return self._not_found("networkpolicies.networking.k8s.io", name)
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
            policy = api.network_policies.get((ns, name))
            return self._send(200, policy) if policy else self._not_found("networkpolicies.networking.k8s.io", name)

    return Handler
