// A file's transcript as the downloads offer it: SubRip, WebVTT and JSON.

/** One decoded segment, times in seconds from the start of the file. */
export interface Segment {
  start: number;
  end: number;
  text: string;
  words: { word: string; start: number; end: number; probability: number }[];
}

/** The whole transcript of a file. */
export interface FileTranscript {
  file: string;
  model: string;
  language: string;
  duration: number;
  segments: Segment[];
}

/** `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (VTT). */
export function timestamp(seconds: number, separator: "," | "."): string {
  const millis = Math.max(0, Math.round(seconds * 1000));
  const pad = (n: number, width: number) => String(n).padStart(width, "0");
  const h = Math.floor(millis / 3_600_000);
  const m = Math.floor(millis / 60_000) % 60;
  const s = Math.floor(millis / 1000) % 60;
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${separator}${pad(millis % 1000, 3)}`;
}

export function srt(transcript: FileTranscript): string {
  return transcript.segments
    .map((s, i) => `${i + 1}\n${timestamp(s.start, ",")} --> ${timestamp(s.end, ",")}\n${s.text}\n`)
    .join("\n");
}

export function vtt(transcript: FileTranscript): string {
  const cues = transcript.segments.map(
    (s) => `${timestamp(s.start, ".")} --> ${timestamp(s.end, ".")}\n${s.text}\n`,
  );
  return ["WEBVTT\n", ...cues].join("\n");
}

export function json(transcript: FileTranscript): string {
  const text = transcript.segments.map((s) => s.text).join(" ");
  return JSON.stringify({ text, ...transcript }, null, 2) + "\n";
}
