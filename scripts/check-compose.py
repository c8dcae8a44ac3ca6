"""What the Compose schema cannot see in docker-compose.yml, checked without a container engine.

- every `depends_on` names a service of the file;
- a `service_healthy` dependency has a health check (its own, or the HEALTHCHECK of the
  Dockerfile it is built from);
- a `service_completed_successfully` dependency is a job: it must not be restarted forever;
- every long-running service has a restart policy;
- every file or folder mounted from the checkout exists.
"""
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
compose = yaml.safe_load((root / "docker-compose.yml").read_text())
services = compose["services"]
errors = []


def has_healthcheck(name, svc):
    if "healthcheck" in svc:
        return not svc["healthcheck"].get("disable", False)
    build = svc.get("build")
    if build is None:
        return False
    context = root / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return "\nHEALTHCHECK " in (context / dockerfile).read_text()


jobs = set()
for name, svc in services.items():
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    for dep, how in deps.items():
        if dep not in services:
            errors.append(f"{name}: depends on {dep}, which is not a service")
            continue
        condition = how.get("condition", "service_started")
        if condition == "service_healthy" and not has_healthcheck(dep, services[dep]):
            errors.append(f"{name}: waits for {dep} to be healthy, but {dep} has no health check")
        if condition == "service_completed_successfully":
            jobs.add(dep)
            if services[dep].get("restart", "no") in ("always", "unless-stopped"):
                errors.append(f"{name}: waits for job {dep} to complete, but {dep} restarts forever")
    for volume in svc.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("."):
            if not (root / source).exists():
                errors.append(f"{name}: mounts {source}, which does not exist")
for name, svc in services.items():
    if name not in jobs and "restart" not in svc:
        errors.append(f"{name}: runs without a restart policy")

for e in errors:
    print(f"docker-compose.yml: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
