//! `--lambda-roles FILE`: each function runs with the credentials of its
//! own IAM role, as Lambda gives them, instead of the stack's. FILE maps
//! every function to a role ARN (`{"connect": "arn:aws:iam::…:role/…"}`);
//! the stack assumes each role (`sts:AssumeRole`, session
//! `fanout-<function>`) with its own credentials.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

/// A function's credentials, as the variables Lambda sets.
pub struct RoleCredentials {
    pub access_key_id: String,
    pub variables: Vec<(String, String)>,
}

/// Reads FILE; every one of `functions` must have a role.
pub fn read(path: &Path, functions: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--lambda-roles {}", path.display()))?;
    let roles: BTreeMap<String, String> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--lambda-roles {}: not a JSON object of function names to role ARNs",
            path.display()
        )
    })?;
    for function in functions {
        anyhow::ensure!(
            roles.contains_key(*function),
            "--lambda-roles {}: no role for the {function} function",
            path.display()
        );
    }
    Ok(roles)
}

/// Assumes `role` for `function`.
pub async fn assume(
    sts: &aws_sdk_sts::Client,
    function: &str,
    role: &str,
) -> anyhow::Result<RoleCredentials> {
    let assumed = sts
        .assume_role()
        .role_arn(role)
        .role_session_name(format!("fanout-{function}"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(fanout_aws::describe(&e)))
        .with_context(|| format!("--lambda-roles: assuming {role} for the {function} function"))?;
    let c = assumed
        .credentials
        .with_context(|| format!("AssumeRole of {role} returned no credentials"))?;
    Ok(RoleCredentials {
        access_key_id: c.access_key_id.clone(),
        variables: vec![
            ("AWS_ACCESS_KEY_ID".into(), c.access_key_id),
            ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key),
            ("AWS_SESSION_TOKEN".into(), c.session_token),
        ],
    })
}
