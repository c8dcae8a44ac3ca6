#!/bin/sh
# Registers varsel's namespace once the server answers (the temporal-namespace job of
# docker-compose.yml, in temporalio/admin-tools). temporalio/server, unlike the retired
# auto-setup image, creates no namespace of its own. Safe to run again: an existing namespace
# is left as it is.
set -eu
namespace=${TEMPORAL_NAMESPACE:-default}
retention=${TEMPORAL_NAMESPACE_RETENTION:-168h}
tries=0
until temporal operator cluster health >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "temporal-namespace: Temporal at $TEMPORAL_ADDRESS did not answer in 60 s" >&2
    temporal operator cluster health
    exit 1
  fi
  sleep 2
done
if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
  echo "temporal-namespace: $namespace exists"
else
  temporal operator namespace create --namespace "$namespace" --retention "$retention"
  echo "temporal-namespace: $namespace created (retention $retention)"
fi
