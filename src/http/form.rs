//! Reading OpenAI's `multipart/form-data` audio requests into checked fields.
//!
//! Parts may come in any order (the SDKs send `file` first, curl in command-line order), and
//! fields this server does not use (`chunking_strategy`, `include[]`) are ignored so newer SDKs
//! keep working. The file's size is counted while it streams in, so an oversized upload is
//! refused without being held in memory.

use axum::extract::Multipart;
use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;

use std::time::Instant;

use super::error::HttpError;
use crate::formats::ResponseFormat;
use crate::service::{BodyPace, ServiceError};

/// Which endpoint a form is for: translations take neither `stream` nor timestamp options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `/v1/audio/transcriptions`.
    Transcriptions,
    /// `/v1/audio/translations`.
    Translations,
}

/// The uploaded file.
#[derive(Debug, Default)]
pub(super) struct Upload {
    pub(super) bytes: Vec<u8>,
    /// The client's file name; only its extension is used, as a hint quoted in errors.
    pub(super) filename: Option<String>,
}

impl Upload {
    /// The file name's extension, without the dot.
    pub(super) fn extension(&self) -> Option<&str> {
        let name = self.filename.as_deref()?;
        let (_, extension) = name.rsplit_once('.')?;
        Some(extension).filter(|e| !e.is_empty() && e.len() <= 8)
    }
}

/// The fields of a transcription or translation request.
#[derive(Debug, Default)]
pub(super) struct AudioForm {
    pub(super) file: Upload,
    pub(super) model: Option<String>,
    /// ISO code; `None` detects the language (multilingual models).
    pub(super) language: Option<String>,
    pub(super) prompt: Option<String>,
    pub(super) response_format: ResponseFormat,
    pub(super) temperature: Option<f32>,
    /// `timestamp_granularities[]` included `segment`.
    pub(super) segment_timestamps: bool,
    /// `timestamp_granularities[]` included `word`.
    pub(super) word_timestamps: bool,
    pub(super) stream: bool,
}

/// Reads every part of `multipart`, at no less than `pace`; fails on the first bad field.
pub(super) async fn read(
    mut multipart: Multipart,
    endpoint: Endpoint,
    max_upload_bytes: usize,
    pace: BodyPace,
) -> Result<AudioForm, HttpError> {
    let now = Instant::now();
    let mut reader = Reader {
        limit: max_upload_bytes,
        pace,
        started: now,
        received: 0,
        last_progress: now,
    };
    let mut form = AudioForm::default();
    let mut has_file = false;
    while let Some(field) = reader
        .paced(multipart.next_field())
        .await?
        .map_err(|e| reader.error(e))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match (name.as_str(), endpoint) {
            ("file", _) if has_file => return Err(invalid("file", "send exactly one `file` part")),
            ("file", _) => {
                form.file = reader.file(field).await?;
                has_file = true;
            }
            ("model", _) => form.model = reader.text(field).await?,
            ("language", _) => {
                form.language = reader.text(field).await?.map(|l| l.to_lowercase());
            }
            ("prompt", _) => form.prompt = reader.text(field).await?,
            ("response_format", _) => {
                form.response_format = response_format(reader.text(field).await?)?;
            }
            ("temperature", _) => form.temperature = temperature(reader.text(field).await?)?,
            ("timestamp_granularities[]" | "timestamp_granularities", Endpoint::Transcriptions) => {
                granularity(reader.text(field).await?, &mut form)?;
            }
            ("stream", Endpoint::Transcriptions) => {
                form.stream = boolean("stream", reader.text(field).await?)?;
            }
            (other, _) => tracing::debug!(field = other, "ignoring unused form field"),
        }
    }
    if !has_file {
        return Err(HttpError::MissingField("file"));
    }
    Ok(form)
}

/// Fuzzing entry: `body` read as a `multipart/form-data` request with boundary `XyZ`, for
/// transcriptions when its length is even, translations when odd. Must not panic.
#[doc(hidden)]
pub fn fuzz_form(body: &[u8]) {
    use axum::extract::FromRequest;
    let endpoint = if body.len().is_multiple_of(2) {
        Endpoint::Transcriptions
    } else {
        Endpoint::Translations
    };
    let request = axum::http::Request::post("/v1/audio/transcriptions")
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(axum::body::Body::from(body.to_vec()))
        .expect("a valid request");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        if let Ok(multipart) = Multipart::from_request(request, &()).await {
            let _ = read(multipart, endpoint, 1 << 20, BodyPace::default()).await;
        }
    });
}

/// Reads parts under the upload limit, and no slower than the pace.
struct Reader {
    limit: usize,
    pace: BodyPace,
    started: Instant,
    /// Body bytes received so far (file and text fields).
    received: u64,
    last_progress: Instant,
}

impl Reader {
    /// Waits for `read` until the pace's deadline: a stalled or crawling client is cut off
    /// with a timeout instead of holding its connection and buffer for as long as it likes.
    async fn paced<T>(&mut self, read: impl Future<Output = T>) -> Result<T, HttpError> {
        let deadline = self
            .pace
            .deadline(self.started, self.received, self.last_progress);
        tokio::time::timeout_at(deadline.into(), read)
            .await
            .map_err(|_| {
                HttpError::Service(self.pace.give_up(
                    self.started,
                    self.received,
                    self.last_progress,
                ))
            })
    }

    fn progressed(&mut self, bytes: usize) {
        self.received += bytes as u64;
        self.last_progress = Instant::now();
    }

    /// Collects the file while counting it; past the limit the rest is read and dropped, so a
    /// client that sent a little too much gets a clean 413 rather than a reset connection (the
    /// router's body limit bounds how much is drained).
    async fn file(&mut self, mut field: Field<'_>) -> Result<Upload, HttpError> {
        let filename = field.file_name().map(str::to_string);
        let mut bytes = Vec::new();
        let mut received = 0usize;
        while let Some(chunk) = self
            .paced(field.chunk())
            .await?
            .map_err(|e| self.error(e))?
        {
            self.progressed(chunk.len());
            received = received.saturating_add(chunk.len());
            if received <= self.limit {
                bytes.extend_from_slice(&chunk);
            } else if !bytes.is_empty() {
                bytes = Vec::new();
            }
        }
        if received > self.limit {
            return Err(HttpError::Service(ServiceError::UploadTooLarge {
                limit: self.limit,
            }));
        }
        Ok(Upload { bytes, filename })
    }

    /// A text field, trimmed; empty means absent.
    async fn text(&mut self, field: Field<'_>) -> Result<Option<String>, HttpError> {
        let value = self.paced(field.text()).await?.map_err(|e| self.error(e))?;
        self.progressed(value.len());
        let value = value.trim();
        Ok((!value.is_empty()).then(|| value.to_string()))
    }

    /// A body over the router's limit is an oversized upload; anything else a broken form.
    fn error(&self, e: MultipartError) -> HttpError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::Service(ServiceError::UploadTooLarge { limit: self.limit })
        } else {
            HttpError::MalformedForm(e.body_text())
        }
    }
}

fn response_format(value: Option<String>) -> Result<ResponseFormat, HttpError> {
    let Some(value) = value else {
        return Ok(ResponseFormat::default());
    };
    ResponseFormat::from_api_name(&value).ok_or_else(|| {
        invalid(
            "response_format",
            format!(
                "unsupported response_format `{value}`; use one of json, text, srt, vtt, \
                 verbose_json"
            ),
        )
    })
}

/// OpenAI accepts 0 to 1.
fn temperature(value: Option<String>) -> Result<Option<f32>, HttpError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
        _ => Err(invalid(
            "temperature",
            format!("temperature must be a number between 0 and 1 (got `{value}`)"),
        )),
    }
}

fn granularity(value: Option<String>, form: &mut AudioForm) -> Result<(), HttpError> {
    match value.as_deref() {
        Some("segment") => form.segment_timestamps = true,
        Some("word") => form.word_timestamps = true,
        other => {
            return Err(invalid(
                "timestamp_granularities[]",
                format!(
                    "unsupported timestamp granularity `{}`; use `segment` or `word`",
                    other.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

fn boolean(param: &'static str, value: Option<String>) -> Result<bool, HttpError> {
    let value = value.unwrap_or_default();
    match value.to_ascii_lowercase().as_str() {
        "" | "false" | "0" => Ok(false),
        "true" | "1" => Ok(true),
        _ => Err(invalid(
            param,
            format!("{param} must be true or false (got `{value}`)"),
        )),
    }
}

fn invalid(param: &'static str, message: impl Into<String>) -> HttpError {
    HttpError::InvalidField {
        param,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values() {
        assert_eq!(
            response_format(Some("verbose_json".into())).unwrap(),
            ResponseFormat::VerboseJson
        );
        assert_eq!(response_format(None).unwrap(), ResponseFormat::Json);
        assert!(response_format(Some("xml".into())).is_err());
        assert_eq!(temperature(Some("0.4".into())).unwrap(), Some(0.4));
        assert!(temperature(Some("1.5".into())).is_err());
        assert!(temperature(Some("warm".into())).is_err());
        assert!(boolean("stream", Some("True".into())).unwrap());
        assert!(!boolean("stream", None).unwrap());
        assert!(boolean("stream", Some("yes".into())).is_err());
        let mut form = AudioForm::default();
        granularity(Some("word".into()), &mut form).unwrap();
        assert!(form.word_timestamps && !form.segment_timestamps);
        assert!(granularity(Some("char".into()), &mut form).is_err());
        let upload = |name: &str| Upload {
            bytes: Vec::new(),
            filename: Some(name.into()),
        };
        assert_eq!(upload("a.b.mp3").extension(), Some("mp3"));
        assert_eq!(upload("noext").extension(), None);
    }
}
