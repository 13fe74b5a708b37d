// A whole file over grpc-web's server streaming (`RecognizeStream`): the file goes up in one
// message (any container the server decodes), segments come back as each window is decoded,
// and an AudioAck after each window says how much of the recording is done.

import { AudioEncoding, type StreamingRecognizeResponse } from "./gen/hearken/speech/v1/speech_pb";
import { authHeaders, speechClient } from "./server";
import type { FileTranscript, Segment } from "./subtitles";

export interface FileOptions {
  apiKey: string;
  model: string;
  language: string;
  onSegment: (segment: Segment, transcript: FileTranscript) => void;
  /** Seconds of the recording done, and its length. */
  onProgress: (done: number, total: number) => void;
  signal: AbortSignal;
}

/** Transcribes `file`, reporting as it goes; resolves to the whole transcript. */
export async function transcribeFile(file: File, options: FileOptions): Promise<FileTranscript> {
  const audio = new Uint8Array(await file.arrayBuffer());
  const transcript: FileTranscript = {
    file: file.name,
    model: options.model,
    language: options.language,
    duration: 0,
    segments: [],
  };
  const responses = speechClient().recognizeStream(
    {
      config: {
        encoding: AudioEncoding.AUTO,
        model: options.model,
        language: options.language,
        wordTimestamps: true,
      },
      audio,
    },
    { headers: authHeaders(options.apiKey), signal: options.signal },
  );
  for await (const response of responses) {
    apply(response, transcript, options);
  }
  return transcript;
}

function apply(response: StreamingRecognizeResponse, transcript: FileTranscript, options: FileOptions): void {
  const event = response.event;
  switch (event.case) {
    case "sessionStarted":
      transcript.model = event.value.model;
      break;
    case "transcript": {
      const update = event.value;
      if (!update.isFinal || !update.committed.trim()) break;
      const segment: Segment = {
        start: update.start,
        end: update.end,
        text: update.committed.trim(),
        words: update.words.map((w) => ({ word: w.word, start: w.start, end: w.end, probability: w.probability })),
      };
      transcript.language = update.language;
      transcript.segments.push(segment);
      options.onSegment(segment, transcript);
      break;
    }
    case "audioAck": {
      const total = event.value.processedSeconds + event.value.backlogSeconds;
      transcript.duration = total;
      options.onProgress(event.value.processedSeconds, total);
      break;
    }
  }
}
