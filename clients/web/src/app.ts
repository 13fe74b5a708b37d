// The page: settings (model, language, API key), the live microphone, a file with progress and
// downloads, and the transcript. Element ids are stable for automation: #transcript (the text
// shown, committed and tentative), #mic, #file, #status.

import { transcribeFile } from "./files";
import { LiveSession, type Utterance } from "./live";
import { authHeaders, describeRpcError, speechClient } from "./server";
import { type FileTranscript, type Segment, json, srt, timestamp, vtt } from "./subtitles";
import type { ModelInfo } from "./gen/hearken/speech/v1/speech_pb";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  status: $<HTMLParagraphElement>("status"),
  model: $<HTMLSelectElement>("model"),
  languageField: $<HTMLLabelElement>("language-field"),
  language: $<HTMLSelectElement>("language"),
  apiKey: $<HTMLInputElement>("api-key"),
  mic: $<HTMLButtonElement>("mic"),
  level: $<HTMLMeterElement>("level"),
  drop: $<HTMLLabelElement>("drop"),
  file: $<HTMLInputElement>("file"),
  progress: $<HTMLProgressElement>("progress"),
  progressText: $<HTMLSpanElement>("progress-text"),
  downloads: {
    srt: $<HTMLButtonElement>("download-srt"),
    vtt: $<HTMLButtonElement>("download-vtt"),
    json: $<HTMLButtonElement>("download-json"),
  },
  transcript: $<HTMLElement>("transcript"),
};

let models: ModelInfo[] = [];
let live: LiveSession | undefined;
let fileRun: AbortController | undefined;
let lastFile: FileTranscript | undefined;

function status(text: string, kind: "info" | "error" = "info"): void {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", kind === "error");
}

const settings = () => ({ apiKey: ui.apiKey.value.trim(), model: ui.model.value, language: ui.language.value });

// --- models -------------------------------------------------------------------------------

async function loadModels(): Promise<void> {
  try {
    const response = await speechClient().listModels({}, { headers: authHeaders(settings().apiKey) });
    models = response.models;
  } catch (error) {
    status(describeRpcError(error), "error");
    return;
  }
  ui.model.replaceChildren(
    ...models.map((m) => {
      const option = new Option(m.loaded ? m.id : `${m.id} (not loaded)`, m.id, m.isDefault, m.isDefault);
      option.disabled = !m.loaded;
      return option;
    }),
  );
  showLanguages();
  status("Ready: start the microphone, or drop a file.");
}

function showLanguages(): void {
  const model = models.find((m) => m.id === ui.model.value);
  const multilingual = model?.multilingual ?? false;
  ui.languageField.hidden = !multilingual;
  const options = (model?.languages ?? []).map((code) => new Option(code, code));
  ui.language.replaceChildren(new Option("Detect", ""), ...options);
}

// --- live microphone ------------------------------------------------------------------------

async function toggleMic(): Promise<void> {
  if (live) {
    ui.mic.disabled = true;
    await live.stop();
    return;
  }
  ui.transcript.replaceChildren();
  live = new LiveSession({
    ...settings(),
    onUtterance: showUtterance,
    onLevel: (rms) => (ui.level.value = Math.min(1, Math.sqrt(rms) * 2)),
    onStatus: status,
    onEnd: () => {
      live = undefined;
      ui.level.value = 0;
      ui.mic.disabled = false;
      ui.mic.textContent = "Start microphone";
      ui.mic.setAttribute("aria-pressed", "false");
    },
  });
  ui.mic.textContent = "Stop microphone";
  ui.mic.setAttribute("aria-pressed", "true");
  await live.start();
}

function showUtterance(u: Utterance): void {
  let line = document.getElementById(`u-${u.id}`);
  if (!line) {
    line = document.createElement("p");
    line.id = `u-${u.id}`;
    line.className = "utterance";
    line.append(span("committed"), span("tentative"));
    ui.transcript.append(line);
  }
  const [committed, tentative] = line.children;
  committed.textContent = u.committed.trim();
  tentative.textContent = u.tentative.trim() ? ` ${u.tentative.trim()}` : "";
  line.classList.toggle("final", u.final);
  if (u.latency !== undefined) line.dataset.latency = `${u.latency.toFixed(2)} s`;
  line.scrollIntoView({ block: "nearest" });
}

function span(className: string): HTMLSpanElement {
  const element = document.createElement("span");
  element.className = className;
  return element;
}

// --- files ----------------------------------------------------------------------------------

async function transcribe(file: File): Promise<void> {
  fileRun?.abort();
  const run = new AbortController();
  fileRun = run;
  lastFile = undefined;
  setDownloads(false);
  ui.transcript.replaceChildren();
  ui.progress.hidden = false;
  ui.progress.value = 0;
  ui.progressText.textContent = "";
  status(`Transcribing ${file.name}…`);
  try {
    lastFile = await transcribeFile(file, {
      ...settings(),
      signal: run.signal,
      onSegment: showSegment,
      onProgress: (done, total) => {
        ui.progress.max = Math.max(total, 0.001);
        ui.progress.value = done;
        ui.progressText.textContent = `${done.toFixed(1)} / ${total.toFixed(1)} s`;
      },
    });
    status(`Done: ${lastFile.segments.length} segments, ${lastFile.duration.toFixed(1)} s of audio.`);
    setDownloads(true);
  } catch (error) {
    if (!run.signal.aborted) status(describeRpcError(error), "error");
  }
}

function showSegment(segment: Segment): void {
  const line = document.createElement("p");
  line.className = "segment";
  line.dataset.time = timestamp(segment.start, ".").slice(0, 8);
  line.textContent = segment.text;
  ui.transcript.append(line);
}

function setDownloads(enabled: boolean): void {
  Object.values(ui.downloads).forEach((button) => (button.disabled = !enabled));
}

function download(extension: string, type: string, render: (t: FileTranscript) => string): void {
  if (!lastFile) return;
  const url = URL.createObjectURL(new Blob([render(lastFile)], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = `${lastFile.file.replace(/\.[^.]*$/, "")}.${extension}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// --- wiring ---------------------------------------------------------------------------------

ui.model.addEventListener("change", showLanguages);
ui.apiKey.addEventListener("change", () => void loadModels());
ui.mic.addEventListener("click", () => void toggleMic());
ui.file.addEventListener("change", () => {
  const file = ui.file.files?.[0];
  if (file) void transcribe(file);
});
ui.drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  ui.drop.classList.add("over");
});
ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("over"));
ui.drop.addEventListener("drop", (event) => {
  event.preventDefault();
  ui.drop.classList.remove("over");
  const file = event.dataTransfer?.files[0];
  if (file) void transcribe(file);
});
ui.downloads.srt.addEventListener("click", () => download("srt", "application/x-subrip", srt));
ui.downloads.vtt.addEventListener("click", () => download("vtt", "text/vtt", vtt));
ui.downloads.json.addEventListener("click", () => download("json", "application/json", json));
void loadModels();
