#!/usr/bin/env bash
# Drives the deployed retail-api past its HPA target (60% CPU) from inside the cluster,
# for a bounded time, so the HPA can be watched scaling out to 5 replicas and back.
#
#   scripts/hpa-load-test.sh [duration, default 5m] [connections, default 32]
#
# In another terminal:
#   kubectl get hpa retail-api-hpa -n mlops -w
#   kubectl get pods -n mlops -l app=retail-api -w
#   kubectl top pods -n mlops -l app=retail-api        # needs metrics-server, as the HPA does
#
# The load runs as one pod (fortio, k8s/load-test/load-generator.yaml) in the mlops namespace,
# against the Service, with a NetworkPolicy that lets it reach the retail-api pods and DNS
# only; both are deleted when the run ends or the script is interrupted.
# Scale-in follows about five minutes after the load stops (the HPA's default
# stabilisation window).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-5m}"
connections="${2:-32}"
namespace=mlops
pod=retail-api-load
# Both go into the manifest as text: refuse anything but what fortio reads.
if ! [[ $duration =~ ^([0-9]+(ms|s|m|h))+$ ]]; then
  echo "hpa-load-test: duration must be like 90s, 5m or 1h30m (got '$duration')" >&2
  exit 2
fi
if ! [[ $connections =~ ^[1-9][0-9]{0,3}$ ]]; then
  echo "hpa-load-test: connections must be a whole number from 1 to 9999 (got '$connections')" >&2
  exit 2
fi

cleanup() { kubectl delete -f k8s/load-test/load-generator.yaml --ignore-not-found --wait=false >/dev/null; }
trap cleanup EXIT

kubectl get hpa retail-api-hpa -n "$namespace"
echo "load: ${connections} connections for ${duration}, no rate limit, against retail-api-service"
sed -e "s/\${DURATION}/${duration}/" -e "s/\${CONNECTIONS}/${connections}/" k8s/load-test/load-generator.yaml |
  kubectl apply -f -
kubectl wait pod "$pod" -n "$namespace" --for=condition=Ready --timeout=120s || true
# Follow the generator until it ends; its summary (qps, percentiles, errors) closes the log.
kubectl logs -f "$pod" -n "$namespace"
kubectl get hpa retail-api-hpa -n "$namespace"
