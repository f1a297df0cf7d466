//! Each settings group written back as the environment variables a Lambda
//! reads it from: the local stack runs the real bootstraps
//! (`fanout-local --lambdas`) with the settings it was started with, as
//! the SAM template gives a deployed function its parameters.
//!
//! The variable names come from the groups' own definitions in
//! [`crate::settings`] (read through `clap`), so they stay defined once;
//! the tests below fail when a group gains a setting this module does not
//! write, or writes one its parser reads back differently.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Command, ValueEnum};

use crate::auth::{DefaultPolicy, RoomPattern};
use crate::ids::TenantId;
use crate::settings::{
    AbuseSettings, AuthSettings, BroadcasterSettings, BudgetSettings, GatewaySettings, JobSettings,
    MetricsSettings, PlannerSettings, PresenceSettings, StoreSettings, StreamSettings,
};

/// A setting's value as its variable holds it; `None` leaves the variable
/// unset (an absent option, an empty list).
pub trait VariableValue {
    fn variable_value(&self) -> Option<String>;
}

macro_rules! displayed {
    ($($t:ty),*) => {$(
        impl VariableValue for $t {
            fn variable_value(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
displayed!(u32, u64, usize, bool, String);

impl VariableValue for Duration {
    fn variable_value(&self) -> Option<String> {
        // humantime's own format ("1m 30s 5ms") is what the parser reads.
        Some(humantime::format_duration(*self).to_string())
    }
}

impl VariableValue for PathBuf {
    fn variable_value(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

impl VariableValue for TenantId {
    fn variable_value(&self) -> Option<String> {
        Some(self.as_str().to_string())
    }
}

impl VariableValue for RoomPattern {
    fn variable_value(&self) -> Option<String> {
        Some(self.text())
    }
}

impl VariableValue for DefaultPolicy {
    fn variable_value(&self) -> Option<String> {
        Some(self.to_possible_value()?.get_name().to_string())
    }
}

impl<T: VariableValue> VariableValue for Option<T> {
    fn variable_value(&self) -> Option<String> {
        self.as_ref()?.variable_value()
    }
}

impl<T: VariableValue> VariableValue for Vec<T> {
    /// Comma-separated, as the groups' `value_delimiter` reads them.
    fn variable_value(&self) -> Option<String> {
        let items: Vec<String> = self.iter().filter_map(|v| v.variable_value()).collect();
        (!items.is_empty()).then(|| items.join(","))
    }
}

/// A settings group's values by field name (its `clap` argument id).
pub trait SettingValues: Args {
    fn values(&self) -> Vec<(&'static str, Option<String>)>;
}

macro_rules! setting_values {
    ($($group:ty { $($field:ident),* $(,)? })*) => {$(
        impl SettingValues for $group {
            fn values(&self) -> Vec<(&'static str, Option<String>)> {
                vec![$((stringify!($field), self.$field.variable_value())),*]
            }
        }
    )*};
}

setting_values! {
    GatewaySettings {
        max_payload_bytes, max_connection_duration, heartbeat_expiry,
        max_rooms_per_connection, max_connections_per_user,
    }
    AbuseSettings {
        client_frame_rate, client_frame_burst, tenant_publish_rate,
        tenant_publish_burst, client_signal_rate, client_signal_burst,
    }
    AuthSettings {
        jwks_url, jwks_file, jwks_cache_ttl, jwks_min_refresh_interval,
        token_issuer, token_audience, max_token_lifetime, token_leeway,
        tenant_claim, user_claim, capabilities_claim, fixed_tenant,
        default_policy, allowed_origins,
    }
    StoreSettings { shards }
    JobSettings { max_connections_per_job }
    PlannerSettings { direct_max_connections, dedupe_ttl, tenant_bound_sources }
    StreamSettings {
        stream_retention, stream_max_events, replay_max_events,
        history_max_page, ephemeral_rooms,
    }
    PresenceSettings { presence_max_members, presence_count_interval }
    BroadcasterSettings {
        max_in_flight, tries_per_invocation, max_attempts, post_timeout,
        deadline_margin,
    }
    BudgetSettings { api_budget_rps, api_budget_burst, broadcaster_concurrency }
    MetricsSettings { metrics_namespace, service_name }
}

/// The group as `(variable, value)` pairs, every set value included.
pub fn variables<T: SettingValues>(group: &T) -> Vec<(String, String)> {
    let command = T::augment_args(Command::new("variables"));
    group
        .values()
        .into_iter()
        .filter_map(|(field, value)| {
            let arg = command.get_arguments().find(|a| a.get_id() == field)?;
            Some((arg.get_env()?.to_str()?.to_string(), value?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    use super::*;

    /// Parses `pairs` as the group's variables (each as its flag), the way
    /// a function reads its environment.
    fn read_back<T: Args + FromArgMatches>(pairs: &[(String, String)]) -> T {
        let command = T::augment_args(Command::new("read").no_binary_name(true))
            .mut_args(|arg| arg.env(None::<&'static str>));
        let original = T::augment_args(Command::new("names"));
        let argv: Vec<String> = pairs
            .iter()
            .map(|(name, value)| {
                let arg = original
                    .get_arguments()
                    .find(|a| a.get_env().and_then(|e| e.to_str()) == Some(name.as_str()))
                    .unwrap_or_else(|| panic!("{name} is no variable of the group"));
                format!("--{}={value}", arg.get_long().unwrap())
            })
            .collect();
        let matches = command.try_get_matches_from(argv).unwrap();
        T::from_arg_matches(&matches).unwrap()
    }

    /// Every argument of the group that has a variable is written.
    fn assert_complete<T: SettingValues + Default>() {
        let command = T::augment_args(Command::new("complete"));
        let written: Vec<&str> = T::default().values().iter().map(|(f, _)| *f).collect();
        for arg in command.get_arguments().filter(|a| a.get_env().is_some()) {
            assert!(
                written.contains(&arg.get_id().as_str()),
                "{} has no value written (add it to setting_values!)",
                arg.get_id()
            );
        }
    }

    fn assert_round_trip<T>(group: T)
    where
        T: SettingValues + FromArgMatches + Default + PartialEq + std::fmt::Debug,
    {
        assert_ne!(
            group,
            T::default(),
            "test with values other than the defaults"
        );
        assert_eq!(read_back::<T>(&variables(&group)), group);
        assert_eq!(read_back::<T>(&variables(&T::default())), T::default());
        assert_complete::<T>();
    }

    #[test]
    fn every_group_reads_back_what_it_writes() {
        assert_round_trip(GatewaySettings {
            max_connection_duration: Duration::from_millis(90_500),
            heartbeat_expiry: Duration::from_secs(7),
            max_rooms_per_connection: 3,
            ..Default::default()
        });
        assert_round_trip(AbuseSettings {
            client_frame_rate: 0,
            tenant_publish_burst: 9,
            ..Default::default()
        });
        assert_round_trip(AuthSettings {
            jwks_file: Some("/tmp/keys.json".into()),
            token_issuer: Some("https://issuer.example".into()),
            token_audience: vec!["a".into(), "b".into()],
            fixed_tenant: Some(TenantId::new("acme").unwrap()),
            default_policy: DefaultPolicy::Deny,
            allowed_origins: vec!["https://app.example".into()],
            token_leeway: Duration::ZERO,
            ..Default::default()
        });
        assert_round_trip(StoreSettings { shards: 9 });
        assert_round_trip(JobSettings {
            max_connections_per_job: 7,
            ..Default::default()
        });
        assert_round_trip(PlannerSettings {
            direct_max_connections: 0,
            tenant_bound_sources: false,
            ..Default::default()
        });
        assert_round_trip(StreamSettings {
            stream_max_events: 5,
            ephemeral_rooms: vec![
                RoomPattern::parse("typing:*").unwrap(),
                RoomPattern::parse("cursor").unwrap(),
            ],
            ..Default::default()
        });
        assert_round_trip(PresenceSettings {
            presence_count_interval: Duration::from_millis(250),
            ..Default::default()
        });
        assert_round_trip(BroadcasterSettings {
            max_in_flight: 2,
            post_timeout: Duration::from_millis(1_500),
            ..Default::default()
        });
        assert_round_trip(BudgetSettings {
            api_budget_rps: 0,
            ..Default::default()
        });
        assert_round_trip(MetricsSettings {
            metrics_namespace: "acme/fanout".into(),
            service_name: "fanout-staging".into(),
        });
    }

    #[test]
    fn unset_options_and_empty_lists_leave_their_variable_out() {
        let names: Vec<String> = variables(&AuthSettings::default())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(!names.contains(&"FANOUT_JWKS_URL".to_string()));
        assert!(!names.contains(&"FANOUT_ALLOWED_ORIGINS".to_string()));
        assert!(names.contains(&"FANOUT_TENANT_CLAIM".to_string()));
    }
}
