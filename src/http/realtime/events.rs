//! The client events a transcription session accepts, parsed leniently enough that a bad
//! event is answered with an `error` naming it (and its `event_id`) rather than ending the
//! session.

use serde_json::Value;

use super::config::{BetaSession, GaSession};
use super::error::RealtimeError;

/// One client event this server acts on.
#[derive(Debug)]
pub(super) enum ClientEvent {
    /// GA `session.update`.
    GaUpdate(GaSession),
    /// Beta `transcription_session.update`.
    BetaUpdate(BetaSession),
    /// `input_audio_buffer.append`, still base64.
    Append(String),
    /// `input_audio_buffer.commit`.
    Commit,
    /// `input_audio_buffer.clear`.
    Clear,
}

/// A parsed message: the client's `event_id` (for the error it may cause) and the event.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) event_id: Option<String>,
    pub(super) event: Result<ClientEvent, RealtimeError>,
}

/// Parses one text message.
pub(super) fn parse(text: &str) -> Incoming {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            return Incoming {
                event_id: None,
                event: Err(RealtimeError::InvalidJson(e.to_string())),
            };
        }
    };
    let event_id = value
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Incoming {
        event_id,
        event: event(&value),
    }
}

fn event(value: &Value) -> Result<ClientEvent, RealtimeError> {
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(RealtimeError::InvalidJson(
            "expected an object with a string `type`".into(),
        ));
    };
    match kind {
        "session.update" => session(kind, value).map(ClientEvent::GaUpdate),
        "transcription_session.update" => session(kind, value).map(ClientEvent::BetaUpdate),
        "input_audio_buffer.append" => match value.get("audio").and_then(Value::as_str) {
            Some(audio) => Ok(ClientEvent::Append(audio.to_owned())),
            None => Err(RealtimeError::InvalidEvent {
                event_type: kind.into(),
                message: "missing string field `audio` (base64 audio)".into(),
            }),
        },
        "input_audio_buffer.commit" => Ok(ClientEvent::Commit),
        "input_audio_buffer.clear" => Ok(ClientEvent::Clear),
        other => Err(RealtimeError::UnknownEvent(other.into())),
    }
}

/// The `session` object of an update; an absent one changes nothing.
fn session<T: serde::de::DeserializeOwned + Default>(
    kind: &str,
    value: &Value,
) -> Result<T, RealtimeError> {
    match value.get("session") {
        None | Some(Value::Null) => Ok(T::default()),
        Some(session) => T::deserialize(session).map_err(|e| RealtimeError::InvalidEvent {
            event_type: kind.into(),
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_their_errors() {
        let append =
            parse(r#"{"type":"input_audio_buffer.append","audio":"AAA=","event_id":"e1"}"#);
        assert_eq!(append.event_id.as_deref(), Some("e1"));
        assert!(matches!(append.event, Ok(ClientEvent::Append(a)) if a == "AAA="));
        assert!(matches!(
            parse("{nope").event,
            Err(RealtimeError::InvalidJson(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"response.create"}"#).event,
            Err(RealtimeError::UnknownEvent(t)) if t == "response.create"
        ));
        assert!(matches!(
            parse(r#"{"type":"session.update","session":{"audio":5}}"#).event,
            Err(RealtimeError::InvalidEvent { .. })
        ));
    }
}
