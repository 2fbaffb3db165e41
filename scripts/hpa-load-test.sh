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
# The load runs as one pod (fortio) in the mlops namespace, against the Service, and is
# deleted when the run ends or the script is interrupted. Scale-in follows about five
# minutes after the load stops (the HPA's default stabilisation window).
set -euo pipefail

duration="${1:-5m}"
connections="${2:-32}"
namespace=mlops
pod=retail-api-load
seed='{"BASKET_SIZE":"M","BASKET_TYPE":"MIXED","STORE_REGION":"LONDON","STORE_FORMAT":"LS","SPEND":125.50,"QUANTITY":3,"PROD_CODE_20":"FOOD","PROD_CODE_30":"FRESH"}'

cleanup() { kubectl delete pod "$pod" -n "$namespace" --ignore-not-found --wait=false >/dev/null; }
trap cleanup EXIT

kubectl get hpa retail-api-hpa -n "$namespace"
echo "load: ${connections} connections for ${duration}, no rate limit, against retail-api-service"
kubectl run "$pod" -n "$namespace" --restart=Never --image=fortio/fortio:1.69.5 \
  --labels=app=retail-api-load -- \
  load -qps 0 -c "$connections" -t "$duration" -content-type application/json -payload "$seed" \
  http://retail-api-service.${namespace}.svc.cluster.local/predict
kubectl wait pod "$pod" -n "$namespace" --for=condition=Ready --timeout=120s || true
# Follow the generator until it ends; its summary (qps, percentiles, errors) closes the log.
kubectl logs -f "$pod" -n "$namespace"
kubectl get hpa retail-api-hpa -n "$namespace"
