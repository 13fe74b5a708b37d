//! Where telemetry goes, read from the standard OpenTelemetry environment variables.
//!
//! hearken decides itself whether an exporter runs (an endpoint is set for the signal and the
//! signal's exporter is not `none`), so that without configuration nothing ever tries to
//! connect. Everything else the SDK and the OTLP exporter read themselves, as the spec says:
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`,
//! `OTEL_EXPORTER_OTLP_(…_)HEADERS`, `_TIMEOUT`, `_COMPRESSION`.

use std::time::Duration;

use super::TelemetryError;

/// Telemetry settings; the default exports nothing (metrics stay readable in-process).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint for spans (`http://collector:4317`); `None`: spans are not exported.
    pub traces_endpoint: Option<String>,
    /// OTLP/gRPC endpoint for metrics; `None`: metrics are not exported.
    pub metrics_endpoint: Option<String>,
    /// `service.name`; `None`: `service.name` from `OTEL_RESOURCE_ATTRIBUTES`, else `hearken`.
    pub service_name: Option<String>,
    /// Time between metric exports; `None`: the SDK's default (60 s).
    pub metric_export_interval: Option<Duration>,
}

impl TelemetryConfig {
    /// Reads the process environment; `otlp_endpoint` (`--otlp-endpoint`) overrides the
    /// endpoint variables for both signals.
    pub fn from_env(otlp_endpoint: Option<String>) -> Result<Self, TelemetryError> {
        Self::from_lookup(otlp_endpoint, |key| {
            std::env::var(key).ok().filter(|v| !v.trim().is_empty())
        })
    }

    fn from_lookup(
        otlp_endpoint: Option<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(Self::default());
        }
        let metric_export_interval = var("OTEL_METRIC_EXPORT_INTERVAL")
            .map(|ms| parse_millis("OTEL_METRIC_EXPORT_INTERVAL", &ms))
            .transpose()?;
        Ok(Self {
            traces_endpoint: signal_endpoint(&otlp_endpoint, &var, "TRACES")?,
            metrics_endpoint: signal_endpoint(&otlp_endpoint, &var, "METRICS")?,
            service_name: var("OTEL_SERVICE_NAME"),
            metric_export_interval,
        })
    }

    /// Whether any signal is exported.
    pub fn exports(&self) -> bool {
        self.traces_endpoint.is_some() || self.metrics_endpoint.is_some()
    }
}

/// The endpoint for `signal` (`TRACES`, `METRICS`): the flag, else the signal's variable,
/// else the shared one; `None` when the signal's exporter is `none` or nothing is set.
fn signal_endpoint(
    flag: &Option<String>,
    var: &impl Fn(&str) -> Option<String>,
    signal: &str,
) -> Result<Option<String>, TelemetryError> {
    let exporter_var = format!("OTEL_{signal}_EXPORTER");
    match var(&exporter_var).as_deref().map(str::trim) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(TelemetryError::Config(format!(
                "{exporter_var}={other} is not supported; hearken exports `otlp` or `none`"
            )));
        }
    }
    let endpoint = flag
        .clone()
        .or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")))
        .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let protocol = var(&format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"))
        .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match protocol {
        Some(protocol) if endpoint.is_some() && protocol.trim() != "grpc" => {
            Err(TelemetryError::Config(format!(
                "OTLP protocol `{protocol}` is not supported; hearken exports OTLP over gRPC \
                 (OTEL_EXPORTER_OTLP_PROTOCOL=grpc, usually port 4317)"
            )))
        }
        _ => Ok(endpoint),
    }
}

fn parse_millis(var: &str, value: &str) -> Result<Duration, TelemetryError> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(TelemetryError::Config(format!(
            "{var}={value}: expected a positive number of milliseconds"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<TelemetryConfig, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetryConfig::from_lookup(flag.map(String::from), |k| vars.get(k).cloned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        let config = config(None, &[]).unwrap();
        assert_eq!(config, TelemetryConfig::default());
        assert!(!config.exports());
    }

    #[test]
    fn endpoints_resolve_flag_then_signal_then_shared() {
        let shared = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://shared:4317")];
        let c = config(None, &shared).unwrap();
        assert_eq!(c.traces_endpoint.as_deref(), Some("http://shared:4317"));
        assert_eq!(c.metrics_endpoint.as_deref(), Some("http://shared:4317"));

        let per_signal = [
            shared[0],
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317"),
        ];
        let c = config(None, &per_signal).unwrap();
        assert_eq!(c.metrics_endpoint.as_deref(), Some("http://metrics:4317"));
        assert_eq!(c.traces_endpoint.as_deref(), Some("http://shared:4317"));

        let c = config(Some("https://flag:4317"), &per_signal).unwrap();
        assert_eq!(c.metrics_endpoint.as_deref(), Some("https://flag:4317"));
        assert_eq!(c.traces_endpoint.as_deref(), Some("https://flag:4317"));
    }

    #[test]
    fn a_signal_can_be_turned_off_or_everything_disabled() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
            ("OTEL_SERVICE_NAME", "asr-eu"),
        ];
        let c = config(None, &vars).unwrap();
        assert_eq!(c.traces_endpoint, None);
        assert_eq!(c.metrics_endpoint.as_deref(), Some("http://c:4317"));
        assert_eq!(c.metric_export_interval, Some(Duration::from_millis(1500)));
        assert_eq!(c.service_name.as_deref(), Some("asr-eu"));

        let disabled = [vars[0], ("OTEL_SDK_DISABLED", "TRUE")];
        assert!(!config(Some("http://x:4317"), &disabled).unwrap().exports());
    }

    #[test]
    fn unsupported_settings_are_errors_not_silence() {
        let http = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ];
        assert!(config(None, &http).unwrap_err().contains("http/protobuf"));
        let console = [("OTEL_METRICS_EXPORTER", "console")];
        assert!(config(None, &console).unwrap_err().contains("console"));
        let interval = [("OTEL_METRIC_EXPORT_INTERVAL", "soon")];
        assert!(
            config(None, &interval)
                .unwrap_err()
                .contains("milliseconds")
        );
    }
}
