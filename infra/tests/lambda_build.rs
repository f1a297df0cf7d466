//! How the bootstraps are built: the `lambda` profile optimises across
//! crates in one unit, and no function links the AWS credential providers
//! a Lambda never uses (SSO, `credential_process`), which only the
//! operator-facing binaries need.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every deployed function's package (as the local stack runs them).
use fanout_local::lambdas::FUNCTIONS;

/// aws-config features a Lambda bootstrap must not carry.
const OPERATOR_ONLY_FEATURES: [&str; 2] = ["sso", "credentials-process"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("infra/ is inside the repository")
        .to_path_buf()
}

/// The lines of one `[section]` of the workspace manifest.
fn manifest_section(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    text.lines()
        .skip_while(|line| line.trim() != format!("[{name}]"))
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(|line| line.split('#').next().unwrap_or("").replace(' ', ""))
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn the_lambda_profile_optimises_across_crates_and_strips() {
    let profile = manifest_section("profile.lambda");
    for setting in [
        r#"inherits="release""#,
        r#"lto="fat""#,
        "codegen-units=1",
        "strip=true",
        "debug=false",
    ] {
        assert!(
            profile.iter().any(|line| line == setting),
            "[profile.lambda] lacks {setting}: {profile:?}"
        );
    }
}

#[test]
fn no_function_links_the_operator_credential_providers() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for function in FUNCTIONS {
        let package = format!("fanout-{function}");
        // The features aws-config gets when this package alone is built,
        // as cargo-lambda builds it.
        let output = Command::new(&cargo)
            .current_dir(root())
            .args(["tree", "--locked", "--offline", "-e", "features"])
            .args(["-p", &package, "-i", "aws-config"])
            .output()
            .expect("cargo tree runs");
        assert!(
            output.status.success(),
            "cargo tree -p {package}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tree = String::from_utf8_lossy(&output.stdout);
        assert!(tree.contains("aws-config"), "{package}: {tree}");
        for feature in OPERATOR_ONLY_FEATURES {
            assert!(
                !tree.contains(&format!("aws-config feature \"{feature}\"")),
                "{package} links aws-config's {feature}:\n{tree}"
            );
        }
    }
}
