//! The observability files in `deploy/` stay true to the code: every metric
//! the Grafana dashboard and the Prometheus alert rules query is one marketd
//! exports, the dashboard is well-formed, and the rules pass
//! `promtool check rules` (when promtool is installed; else a structural check).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `marketd_*` names in `text`, histogram suffixes stripped.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("marketd_") {
        let start = i + pos;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if before_ok {
            let mut name = &text[start..end];
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    name = base;
                }
            }
            out.insert(name.to_string());
        }
        i = end;
    }
    out
}

/// Metric names the code registers (string literals in `crates/*/src`).
fn exported() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut src = String::new();
    for c in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        if c.path().join("src").is_dir() {
            walk(&c.path().join("src"), &mut src);
        }
    }
    metric_names(&src)
        .into_iter()
        .filter(|n| src.contains(&format!("\"{n}\"")))
        .collect()
}

#[test]
fn dashboard_and_alerts_use_exported_metric_names() {
    let exported = exported();
    assert!(
        exported.contains("marketd_http_requests_total"),
        "{exported:?}"
    );
    let dash = std::fs::read_to_string(root().join("deploy/grafana/marketd.json")).unwrap();
    let alerts = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    for (file, text) in [("marketd.json", &dash), ("alerts.yml", &alerts)] {
        let used = metric_names(text);
        assert!(used.len() >= 5, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries metrics marketd does not export: {unknown:?}"
        );
    }
}

#[test]
fn dashboard_is_well_formed() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/marketd.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["uid"], "marketd-overview");
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{}: gridPos.{k}", p["title"]);
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty());
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains("marketd_"), "{expr}");
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
        }
    }
}

#[test]
fn alert_rules_pass_promtool_or_a_structural_check() {
    let path = root().join("deploy/prometheus/alerts.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    for want in ["error", "latency", "feed", "lag"] {
        assert!(text.to_ascii_lowercase().contains(want), "no {want} alert");
    }
    match std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            // No promtool: every rule has an alert name, an expression, a
            // severity and a summary, and the file is indented with spaces.
            assert!(text.starts_with('#') || text.starts_with("groups:"));
            assert!(text.contains("\ngroups:\n") || text.starts_with("groups:"));
            assert!(!text.contains('\t'));
            let rules: Vec<&str> = text.split("- alert:").skip(1).collect();
            assert!(rules.len() >= 4);
            for r in rules {
                for k in ["expr:", "severity:", "summary:"] {
                    assert!(r.contains(k), "rule without {k}: {r}");
                }
            }
        }
    }
}
