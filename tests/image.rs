//! The two ways the controller's image is built agree on what users depend on: the
//! `Dockerfile` (for users with Docker) and `hack/image.sh` (an OCI archive without a container
//! engine, loaded into the node of `hack/control-plane.sh up --node`). Both must give the same
//! user, entrypoint, exposed ports and labels; the chart's securityContext and probes assume
//! them (docs/install.md).
//!
//! The Dockerfile's final stage is parsed here; `hack/image.sh --print-config` prints the image
//! configuration the script writes, without building anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// What a Dockerfile's final stage says about the running image.
#[derive(Debug, Default, PartialEq)]
struct ImageContract {
    user: String,
    entrypoint: Vec<String>,
    ports: Vec<String>,
    labels: BTreeMap<String, String>,
}

/// Joins continuation lines and drops comments, giving one instruction per line.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// `key="value" key2="value 2"` as LABEL writes them (double-quoted values, no escapes inside).
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').expect("LABEL key=value");
        let after = after.strip_prefix('"').expect("LABEL values are double-quoted here");
        let (value, after) = after.split_once('"').expect("a closing quote");
        out.insert(key.trim().to_string(), value.to_string());
        rest = after.trim();
    }
    out
}

fn dockerfile_contract(dockerfile: &str) -> ImageContract {
    let all = instructions(dockerfile);
    let last_from = all.iter().rposition(|i| i.starts_with("FROM ")).expect("a FROM");
    let mut contract = ImageContract::default();
    for instruction in &all[last_from + 1..] {
        let (verb, args) = instruction.split_once(' ').unwrap_or((instruction, ""));
        match verb {
            "USER" => contract.user = args.trim().to_string(),
            "ENTRYPOINT" => contract.entrypoint = serde_json::from_str(args).expect("ENTRYPOINT in exec form"),
            "EXPOSE" => contract.ports.extend(args.split_whitespace().map(|p| {
                if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                }
            })),
            "LABEL" => contract.labels.extend(labels(args)),
            _ => {}
        }
    }
    contract.ports.sort();
    contract
}

fn script_contract(config: &Value) -> ImageContract {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().expect("an array").iter().map(|s| s.as_str().expect("a string").to_string()).collect()
    };
    let mut ports: Vec<String> = config["ExposedPorts"].as_object().expect("ExposedPorts").keys().cloned().collect();
    ports.sort();
    ImageContract {
        user: config["User"].as_str().expect("User").to_string(),
        entrypoint: strings(&config["Entrypoint"]),
        ports,
        labels: config["Labels"]
            .as_object()
            .expect("Labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a label value").to_string()))
            .collect(),
    }
}

#[test]
fn dockerfile_and_image_script_agree_on_user_entrypoint_ports_and_labels() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("the Dockerfile");
    let from_dockerfile = dockerfile_contract(&dockerfile);
    let out = Command::new("bash")
        .arg(root.join("hack/image.sh"))
        .arg("--print-config")
        .output()
        .expect("bash hack/image.sh --print-config");
    assert!(out.status.success(), "hack/image.sh --print-config: {}", String::from_utf8_lossy(&out.stderr));
    let config: Value = serde_json::from_slice(&out.stdout).expect("an image configuration (JSON)");
    let from_script = script_contract(&config);

    // The chart runs as 65532 with a read-only root; the probes and Services use 8080/8081.
    assert_eq!(from_dockerfile.user, "65532:65532");
    assert_eq!(from_dockerfile.entrypoint, ["/kube-lighthouse"]);
    assert_eq!(from_dockerfile.ports, ["8080/tcp", "8081/tcp"]);
    assert!(from_dockerfile.labels.contains_key("org.opencontainers.image.source"));
    assert_eq!(from_script, from_dockerfile, "hack/image.sh and the Dockerfile disagree");
}

#[test]
fn the_dockerfile_parser_sees_a_difference() {
    // The comparison above can fail: a changed user, port or label is seen.
    let base = "FROM a AS b\nUSER 1\nFROM c\nLABEL x=\"1\" \\\n      y=\"two words\"\nUSER 65532:65532\nEXPOSE 8080 8081\nENTRYPOINT [\"/k\"]\n";
    let contract = dockerfile_contract(base);
    assert_eq!(contract.user, "65532:65532");
    assert_eq!(contract.labels.get("y").map(String::as_str), Some("two words"));
    for changed in [
        base.replace("USER 65532:65532", "USER 0"),
        base.replace("EXPOSE 8080 8081", "EXPOSE 8080"),
        base.replace("y=\"two words\"", "y=\"other\""),
        base.replace("[\"/k\"]", "[\"/sh\"]"),
    ] {
        assert_ne!(dockerfile_contract(&changed), contract, "{changed}");
    }
}
