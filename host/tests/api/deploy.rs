//! The Kubernetes manifests keep the names, ports, probes and bounds the runbook's
//! commands rely on (`kubectl get svc retail-api-service -n mlops`, …): a rename fails
//! here. The manifests are rendered by `kubectl kustomize`, as `kubectl apply -k` would.

use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Every object `kubectl kustomize k8s/` renders, as JSON.
fn rendered_objects() -> Vec<Value> {
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s");
    let rendered =
        Command::new("kubectl").arg("kustomize").arg(&k8s).output().expect("kubectl (client only)");
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    // PyYAML reads the stream (installed with the Python test tools).
    let mut python = Command::new("python3")
        .args(["-c", "import sys, yaml, json; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    python.stdin.take().unwrap().write_all(&rendered.stdout).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in k8s/"))
}

#[test]
fn manifests_keep_the_runbook_names_ports_probes_and_bounds() {
    let objects = rendered_objects();
    object(&objects, "Namespace", "mlops");
    for o in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(o["metadata"]["namespace"], "mlops", "{} {}", o["kind"], o["metadata"]["name"]);
    }
    let account = object(&objects, "ServiceAccount", "retail-api-sa");
    assert!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_string(),
        "IRSA role annotation"
    );

    let deployment = object(&objects, "Deployment", "retail-api");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "retail-api-sa");
    let container = &pod["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 8000);
    let env = |name: &str| {
        container["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone())
    };
    assert_eq!(env("PORT"), Some(Value::from("8000")));
    assert_eq!(env("MODEL_PACKAGE_GROUP"), Some(Value::from("retail-price-sensitivity-models")));
    assert!(env("AWS_DEFAULT_REGION").is_some());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert!(container["startupProbe"]["httpGet"]["path"].is_string(), "startup probe");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");

    // Draining fits in the grace period: preStop, then not ready, then the drain.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let seconds = |name: &str| env(name).and_then(|v| v.as_str()?.parse::<u64>().ok()).unwrap_or(0);
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    let needed = pre_stop + seconds("SHUTDOWN_DELAY_SECS") + seconds("DRAIN_TIMEOUT_SECS");
    assert!(grace > needed, "terminationGracePeriodSeconds {grace} ≤ {needed} needed to drain");

    let service = object(&objects, "Service", "retail-api-service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["ports"][0]["port"], 80);
    let target = &service["spec"]["ports"][0]["targetPort"];
    assert!(
        target == 8000 || *target == container["ports"][0]["name"],
        "service targets port 8000: {target}"
    );

    // The Open Inference Protocol over gRPC: the container's port, the Service's named
    // port with its application protocol, and the NetworkPolicy letting it in.
    let grpc =
        container["ports"].as_array().unwrap().iter().find(|p| p["name"] == "grpc").expect("a grpc port");
    assert_eq!(grpc["containerPort"], 8001);
    assert_eq!(env("GRPC_PORT"), Some(Value::from("8001")));
    let grpc_service =
        service["spec"]["ports"].as_array().unwrap().iter().find(|p| p["name"] == "grpc").unwrap();
    assert_eq!((&grpc_service["port"], &grpc_service["targetPort"]), (&json!(8001), &json!("grpc")));
    assert_eq!(grpc_service["appProtocol"], "kubernetes.io/h2c");
    let policy = object(&objects, "NetworkPolicy", "retail-api-netpol");
    let open: Vec<&Value> =
        policy["spec"]["ingress"][0]["ports"].as_array().unwrap().iter().map(|p| &p["port"]).collect();
    assert_eq!(open, [&json!(8000), &json!(8001)]);

    let hpa = object(&objects, "HorizontalPodAutoscaler", "retail-api-hpa");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "retail-api");
    assert_eq!(
        (hpa["spec"]["minReplicas"].as_u64(), hpa["spec"]["maxReplicas"].as_u64()),
        (Some(2), Some(5))
    );
    let cpu = &hpa["spec"]["metrics"][0]["resource"];
    assert_eq!((cpu["name"].as_str(), cpu["target"]["averageUtilization"].as_u64()), (Some("cpu"), Some(60)));

    let ingress = object(&objects, "Ingress", "retail-api-ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "alb");
    assert_eq!(ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/healthcheck-path"], "/health");
}
