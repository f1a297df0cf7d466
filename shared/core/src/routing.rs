//! API Gateway's route selection for WebSocket messages with the route
//! selection expression `$request.body.action`: a JSON object whose `action`
//! is a string naming a configured route goes to that route; everything
//! else (non-JSON, no `action`, an unknown one) goes to `$default`.

pub const CONNECT: &str = "$connect";
pub const DISCONNECT: &str = "$disconnect";
pub const DEFAULT: &str = "$default";

/// The route key for a message `body`, given the configured `routes`.
pub fn select_route<'r>(body: &str, routes: &[&'r str]) -> &'r str {
    #[derive(serde::Deserialize)]
    struct Selector {
        #[serde(default)]
        action: Option<serde_json::Value>,
    }
    let action = serde_json::from_str::<Selector>(body)
        .ok()
        .and_then(|s| s.action)
        .and_then(|a| a.as_str().map(str::to_owned));
    match action {
        Some(a) => routes.iter().find(|r| **r == a).copied().unwrap_or(DEFAULT),
        None => DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[&str] = &["join", "leave", "publish", "ping"];

    #[test]
    fn selects_by_action() {
        assert_eq!(
            select_route(r#"{"action":"join","room":"x"}"#, ROUTES),
            "join"
        );
        assert_eq!(select_route(r#"{"action":"ping"}"#, ROUTES), "ping");
    }

    #[test]
    fn falls_back_to_default() {
        for body in [
            "not json",
            "[]",
            "{}",
            r#"{"action":5}"#,
            r#"{"action":"dance"}"#,
            "",
        ] {
            assert_eq!(select_route(body, ROUTES), DEFAULT, "{body}");
        }
    }
}
