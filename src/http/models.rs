//! `GET /v1/models`, `GET /v1/models/{id}`, and which model a request's `model` field means.
//!
//! A server holds one loaded model. Clients written for OpenAI send OpenAI's model names, and
//! many send whatever their configuration says; both must reach the loaded model. Only an id
//! this server could have loaded (one in the model catalogue) but did not is an error: the
//! client clearly wants a different model, and silently transcribing with another would hide
//! that.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use super::GatewayState;
use super::error::HttpError;
use crate::model::store::CATALOG;
use crate::service::ServiceError;

/// OpenAI's transcription model names; each means "the model this server serves".
pub const OPENAI_ALIASES: &[&str] = &["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];

/// Checks a request's `model` field against the served model.
pub(super) fn resolve(requested: Option<&str>, served: &str) -> Result<(), ServiceError> {
    let Some(requested) = requested.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let other_known_model =
        requested != served && CATALOG.iter().any(|entry| entry.id == requested);
    if other_known_model {
        return Err(unknown(requested, served));
    }
    Ok(())
}

/// `GET /v1/models`: the loaded model.
pub(super) async fn list(State(state): State<Arc<GatewayState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "object": "list",
        "data": [model_object(&state)],
    }))
}

/// `GET /v1/models/{id}`: the loaded model, or 404.
pub(super) async fn get(
    State(state): State<Arc<GatewayState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let served = state.model_id();
    if id != served {
        return Err(unknown(&id, served).into());
    }
    Ok(Json(model_object(&state)))
}

fn unknown(requested: &str, served: &str) -> ServiceError {
    ServiceError::UnknownModel {
        requested: requested.to_string(),
        served: served.to_string(),
    }
}

fn model_object(state: &GatewayState) -> serde_json::Value {
    serde_json::json!({
        "id": state.model_id(),
        "object": "model",
        "created": state.created,
        "owned_by": "hearken",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_resolve_to_the_served_model() {
        for name in [
            None,
            Some(""),
            Some("tiny.en"),
            Some("whisper-1"),
            Some("my-model"),
        ] {
            assert!(resolve(name, "tiny.en").is_ok(), "{name:?}");
        }
        for alias in OPENAI_ALIASES {
            assert!(resolve(Some(alias), "tiny.en").is_ok());
        }
        let err = resolve(Some("base"), "tiny.en").unwrap_err();
        assert!(matches!(err, ServiceError::UnknownModel { .. }), "{err:?}");
        assert!(resolve(Some("base"), "base").is_ok());
    }
}
