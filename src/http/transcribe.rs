//! `POST /v1/audio/transcriptions` and `POST /v1/audio/translations`: form → checked job →
//! engine → one body in the asked format, or Server-Sent Events.
//!
//! Everything that can be refused cheaply (form, model, options) is checked before the audio
//! is decoded by the serving core's whole-file pipeline (on the blocking pool).
//! The request takes a session slot (shared with gRPC) only once its body is read and its
//! options are checked: a slow or stalled upload holds no slot, and its read is cut off by the
//! body pace (a stall timeout and a minimum average rate).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::GatewayState;
use super::error::HttpError;
use super::form::{self, AudioForm, Endpoint};
use super::{models, sse};
use crate::engine::JobOptions;
use crate::formats::{RenderOptions, ResponseFormat, render};
use crate::model::whisper::tokens::Task;
use crate::service::{AudioFormat, Caller};

/// `POST /v1/audio/transcriptions`.
pub(super) async fn transcriptions(
    State(state): State<Arc<GatewayState>>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, HttpError> {
    handle(&state, &caller, multipart, Endpoint::Transcriptions).await
}

/// `POST /v1/audio/translations`: speech in any language the model knows → English text.
pub(super) async fn translations(
    State(state): State<Arc<GatewayState>>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, HttpError> {
    handle(&state, &caller, multipart, Endpoint::Translations).await
}

/// What a checked form asks for.
struct Plan {
    job: JobOptions,
    format: ResponseFormat,
    render: RenderOptions,
    stream: bool,
}

async fn handle(
    state: &GatewayState,
    caller: &Caller,
    multipart: Result<Multipart, MultipartRejection>,
    endpoint: Endpoint,
) -> Result<Response, HttpError> {
    let multipart = multipart.map_err(|e| HttpError::MalformedForm(e.body_text()))?;
    let limits = state.service.limits();
    let form = form::read(
        multipart,
        endpoint,
        limits.max_upload_bytes,
        limits.body_pace,
    )
    .await?;
    let plan = plan(state, &form, endpoint)?;
    let permit = state.service.open_session(caller)?;
    let format = AudioFormat::Sniffed {
        extension_hint: form.file.extension().map(str::to_string),
    };
    let job = state
        .service
        .submit_file(caller, form.file.bytes, format, &plan.job)
        .await?;
    if plan.stream {
        return Ok(sse::respond(Arc::clone(&state.service), job, permit).into_response());
    }
    let transcript = tokio::select! {
        transcript = job.finish() => transcript?,
        expired = state.service.grace_expired() => return Err(expired.into()),
    };
    drop(permit);
    let body = render(&transcript, plan.format, &plan.render);
    Ok(([(header::CONTENT_TYPE, plan.format.media_type())], body).into_response())
}

/// Checks the form's choices against the served model and turns them into job options.
fn plan(state: &GatewayState, form: &AudioForm, endpoint: Endpoint) -> Result<Plan, HttpError> {
    models::resolve(form.model.as_deref(), state.model_id())?;
    let task = match endpoint {
        Endpoint::Transcriptions => Task::Transcribe,
        Endpoint::Translations => {
            check_can_translate(state)?;
            Task::Translate
        }
    };
    if form.stream
        && !matches!(
            form.response_format,
            ResponseFormat::Json | ResponseFormat::Text
        )
    {
        return Err(HttpError::InvalidField {
            param: "response_format",
            message: "stream=true sends Server-Sent Events and works with response_format json \
                      or text only"
                .to_string(),
        });
    }
    // Word timings cost an extra decoder pass and appear only in verbose_json.
    let words = form.word_timestamps && form.response_format == ResponseFormat::VerboseJson;
    let job = JobOptions {
        language: form.language.clone(),
        task,
        prompt: form.prompt.clone(),
        word_timestamps: words,
        // json and text carry no times but still decode with them: without, tiny.en drops
        // whole sentences of audio holding several utterances (see `JobOptions::text_only`).
        text_only: false,
        trim_encoder: false,
        temperature: form.temperature,
        single_pass: false,
        live: false,
        // The server's beam width (`--beam-size`) for files; live requests decode greedily.
        beam_size: None,
    };
    state.engine().validate(&job)?;
    Ok(Plan {
        job,
        format: form.response_format,
        render: RenderOptions {
            task,
            // As OpenAI: segments unless only word timings were asked for.
            segments: form.segment_timestamps || !form.word_timestamps,
            words,
            usage: true,
        },
        stream: form.stream,
    })
}

/// English-only models have no translate task; say so before any audio is decoded.
fn check_can_translate(state: &GatewayState) -> Result<(), HttpError> {
    if state.service.model_info().multilingual {
        return Ok(());
    }
    Err(HttpError::InvalidField {
        param: "model",
        message: format!(
            "the served model `{}` is English-only and cannot translate; start the server with \
             a multilingual model (e.g. `hearken serve --model base`) to use \
             /v1/audio/translations",
            state.model_id()
        ),
    })
}
