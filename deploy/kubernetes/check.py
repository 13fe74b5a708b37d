"""Checks deploy/kubernetes: every manifest against the Kubernetes API schemas (strict: an
unknown field fails), for the oldest and newest versions it targets, then that the manifests
agree with hearken itself.

    python3 deploy/kubernetes/check.py SERVE_HELP METRICS

SERVE_HELP is `hearken serve --help`, METRICS a scrape of a running server's /metrics.
"""

import sys
from pathlib import Path

import kubernetes_validate
import yaml

HERE = Path(__file__).parent
# preStop's `sleep` action is in the API from 1.30 on.
VERSIONS = ["1.30.0", "1.37.0"]
# Read from the environment outside `serve`'s flags (the model store, logging).
OTHER_ENV = {"HEARKEN_MODEL_DIR", "HEARKEN_PYPI_URL", "HEARKEN_LOG"}


def documents():
    for path in sorted(HERE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def main(serve_help: str, metrics: str) -> int:
    problems = []
    docs = list(documents())
    for version in VERSIONS:
        for name, doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{name}: {doc['kind']} against {version}: {e.message} at "
                                f"{'.'.join(map(str, e.path))}")
    listed = yaml.safe_load((HERE / "kustomization.yaml").read_text())["resources"]
    files = sorted({name for name, _ in docs})
    if sorted(listed) != files:
        problems.append(f"kustomization.yaml lists {sorted(listed)}, the folder has {files}")

    kinds = {doc["kind"]: doc for _, doc in docs}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    for var in env:
        if var.startswith("HEARKEN_") and var not in OTHER_ENV and f"env: {var}=" not in serve_help:
            problems.append(f"the Deployment sets {var}, which `hearken serve` does not read")
    grace = int(env.get("HEARKEN_SHUTDOWN_GRACE_SECONDS", 30))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    if pod["terminationGracePeriodSeconds"] < pre_stop + grace:
        problems.append(f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} "
                        f"< preStop {pre_stop} s + shutdown grace {grace} s: Kubernetes would "
                        "kill the replica while its streams drain")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for var, port in [("HEARKEN_GRPC_ADDR", "grpc"), ("HEARKEN_HTTP_ADDR", "http"),
                      ("HEARKEN_METRICS_ADDR", "metrics")]:
        if var in env and int(env[var].rsplit(":", 1)[1]) != ports[port]:
            problems.append(f"{var}={env[var]} is not the {port} containerPort {ports[port]}")
    for probe in ("startupProbe", "readinessProbe"):
        if container[probe].get("grpc", {}).get("port") != ports["grpc"]:
            problems.append(f"{probe} does not ask grpc.health.v1 on the gRPC port")
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    if int(annotations["prometheus.io/port"]) != ports["metrics"]:
        problems.append("prometheus.io/port is not the metrics port")
    hpa_metric = kinds["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    if f"\n{hpa_metric} " not in metrics and f"\n{hpa_metric}{{" not in metrics:
        problems.append(f"the HPA scales on {hpa_metric}, which /metrics does not have")

    for p in problems:
        print(f"deploy/kubernetes: {p}", file=sys.stderr)
    print(f"deploy/kubernetes: {len(docs)} resources valid against {', '.join(VERSIONS)}; "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).read_text(), Path(sys.argv[2]).read_text()))
