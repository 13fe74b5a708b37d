// Live microphone transcription over the OpenAI Realtime transcription WebSocket (grpc-web
// cannot stream from browser to server). The capture runs in an AudioWorklet with the
// browser's echo cancellation, noise suppression and gain control off (they smear speech for
// the model); PCM16 at the context's own rate goes out as `input_audio_buffer.append`, and the
// server resamples.

import type { CaptureMessage } from "./capture-worklet";
import { serverUrl } from "./server";

/** hearken's `include` entry for tentative-text events (OpenAI servers ignore it). */
const INCLUDE_TENTATIVE = "item.input_audio_transcription.tentative";
/** How long a stop waits for the last utterance's final before closing anyway. */
const FINISH_TIMEOUT_MS = 15_000;

/** What the live view shows of one utterance. */
export interface Utterance {
  id: string;
  committed: string;
  tentative: string;
  final: boolean;
  /** Seconds from the end of its speech being sent to its final arriving. */
  latency?: number;
}

export interface LiveOptions {
  apiKey: string;
  model: string;
  language: string;
  onUtterance: (u: Utterance) => void;
  onLevel: (rms: number) => void;
  onStatus: (text: string, kind: "info" | "error") => void;
  /** The session ended (stopped, refused or failed). */
  onEnd: () => void;
}

/** One running microphone session. */
export class LiveSession {
  private socket?: WebSocket;
  private context?: AudioContext;
  private media?: MediaStream;
  private readonly utterances = new Map<string, Utterance>();
  /** Wall time (ms) at which each 100 ms of audio was sent, by audio time. */
  private readonly sentAt: number[] = [];
  private sentSeconds = 0;
  private speechEndMs = new Map<string, number>();
  private openItem?: string;
  private ended = false;
  private finishing?: () => void;

  constructor(private readonly options: LiveOptions) {}

  /** Asks for the microphone, opens the socket, starts sending. */
  async start(): Promise<void> {
    const { onStatus } = this.options;
    onStatus("Asking for the microphone…", "info");
    try {
      this.media = await navigator.mediaDevices.getUserMedia({
        audio: {
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
          channelCount: 1,
        },
      });
    } catch (error) {
      this.fail(microphoneError(error));
      return;
    }
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule(new URL("capture-worklet.js", document.baseURI));
    onStatus("Connecting…", "info");
    const socket = await this.connect();
    if (!socket) return;
    this.socket = socket;
    socket.onmessage = (message) => this.onEvent(JSON.parse(String(message.data)));
    socket.onclose = (close) => this.onClose(close);
    socket.send(JSON.stringify(this.sessionUpdate()));
    this.startCapture();
    onStatus("Listening: speak, and the text appears as you talk.", "info");
  }

  /** Stops the microphone, finishes the open utterance and waits for its final. */
  async stop(): Promise<void> {
    this.stopCapture();
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      this.end();
      return;
    }
    this.options.onStatus("Finishing the last utterance…", "info");
    if (this.openItem) socket.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
    await new Promise<void>((resolve) => {
      this.finishing = resolve;
      this.resolveIfFinished();
      setTimeout(resolve, FINISH_TIMEOUT_MS);
    });
    socket.close(1000, "stopped");
    this.options.onStatus("Stopped.", "info");
    this.end();
  }

  private sessionUpdate(): object {
    return {
      type: "session.update",
      session: {
        type: "transcription",
        audio: {
          input: {
            format: { type: "audio/pcm", rate: this.context!.sampleRate },
            transcription: { model: this.options.model, language: this.options.language },
            turn_detection: { type: "server_vad" },
          },
        },
        include: [INCLUDE_TENTATIVE],
      },
    };
  }

  /** The socket once open; on a refusal, `undefined` after saying why. */
  private async connect(): Promise<WebSocket | undefined> {
    const url = new URL("/v1/realtime?intent=transcription", serverUrl());
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const protocols = ["realtime"];
    // Browsers cannot set headers on a WebSocket: OpenAI's key subprotocol carries it.
    if (this.options.apiKey) protocols.push(`openai-insecure-api-key.${this.options.apiKey}`);
    const socket = new WebSocket(url, protocols);
    const opened = await new Promise<boolean>((resolve) => {
      socket.onopen = () => resolve(true);
      socket.onerror = () => resolve(false);
    });
    if (opened) return socket;
    // The browser hides a refused upgrade's status: ask again over plain HTTP to learn it.
    this.fail(await refusalReason(url, this.options.apiKey));
    return undefined;
  }

  private startCapture(): void {
    const context = this.context!;
    const source = context.createMediaStreamSource(this.media!);
    const capture = new AudioWorkletNode(context, "pcm16-capture");
    capture.port.onmessage = (message: MessageEvent<CaptureMessage>) => this.send(message.data);
    source.connect(capture);
  }

  private stopCapture(): void {
    this.media?.getTracks().forEach((track) => track.stop());
    void this.context?.close();
    this.media = undefined;
    this.context = undefined;
  }

  private send({ pcm, rms }: CaptureMessage): void {
    this.options.onLevel(rms);
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(pcm) }));
    this.sentSeconds += pcm.byteLength / 2 / (this.context?.sampleRate ?? 48_000);
    this.sentAt[Math.round(this.sentSeconds * 10)] = performance.now();
  }

  private onEvent(event: RealtimeEvent): void {
    switch (event.type) {
      case "input_audio_buffer.speech_started":
        this.openItem = event.item_id;
        this.utterance(event.item_id!);
        break;
      case "input_audio_buffer.speech_stopped":
        this.speechEndMs.set(event.item_id!, event.audio_end_ms ?? 0);
        if (this.openItem === event.item_id) this.openItem = undefined;
        break;
      case "conversation.item.input_audio_transcription.tentative":
        this.change(event.item_id!, (u) => (u.tentative = event.tentative ?? ""));
        break;
      case "conversation.item.input_audio_transcription.delta":
        this.change(event.item_id!, (u) => (u.committed += event.delta ?? ""));
        break;
      case "conversation.item.input_audio_transcription.completed":
        this.complete(event.item_id!, event.transcript ?? "");
        break;
      case "error":
        this.options.onStatus(`The server said: ${event.error?.message ?? "unknown error"}`, "error");
        break;
    }
  }

  private complete(id: string, transcript: string): void {
    if (this.openItem === id) this.openItem = undefined;
    this.change(id, (u) => {
      u.committed = transcript;
      u.tentative = "";
      u.final = true;
      u.latency = this.latency(id);
    });
    this.resolveIfFinished();
  }

  /** Seconds since the audio at the utterance's end of speech was sent. */
  private latency(id: string): number | undefined {
    const endMs = this.speechEndMs.get(id);
    if (endMs === undefined) return undefined;
    const sent = this.sentAt[Math.max(1, Math.ceil(endMs / 100))];
    return sent === undefined ? undefined : (performance.now() - sent) / 1000;
  }

  private utterance(id: string): Utterance {
    let u = this.utterances.get(id);
    if (!u) {
      u = { id, committed: "", tentative: "", final: false };
      this.utterances.set(id, u);
    }
    return u;
  }

  private change(id: string, edit: (u: Utterance) => void): void {
    const u = this.utterance(id);
    edit(u);
    this.options.onUtterance({ ...u });
  }

  private resolveIfFinished(): void {
    const pending = [...this.utterances.values()].some((u) => !u.final);
    if (this.finishing && !pending && !this.openItem) this.finishing();
  }

  private onClose(close: CloseEvent): void {
    if (!this.ended && close.code !== 1000) {
      this.fail(`The server closed the session (${close.code}${close.reason ? `: ${close.reason}` : ""}).`);
    }
    this.finishing?.();
  }

  private fail(message: string): void {
    this.stopCapture();
    this.options.onStatus(message, "error");
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.options.onEnd();
  }
}

interface RealtimeEvent {
  type: string;
  item_id?: string;
  audio_end_ms?: number;
  delta?: string;
  tentative?: string;
  transcript?: string;
  error?: { message?: string };
}

function microphoneError(error: unknown): string {
  const name = error instanceof DOMException ? error.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Microphone access was denied. Allow it for this site (the icon in the address bar), then press the microphone button again.";
  }
  if (name === "NotFoundError") return "No microphone was found.";
  if (name === "NotReadableError") return "The microphone is in use by another program.";
  return `The microphone could not be opened: ${String(error)}`;
}

/** Why the server refused the upgrade, from the same request without it (OpenAI's envelope). */
async function refusalReason(url: URL, apiKey: string): Promise<string> {
  const http = new URL(url);
  http.protocol = url.protocol === "wss:" ? "https:" : "http:";
  try {
    const response = await fetch(http, {
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    });
    const body = await response.json().catch(() => ({}));
    const message: string = body?.error?.message ?? response.statusText;
    switch (response.status) {
      case 401:
        return `The server needs a valid API key (401): ${message}`;
      case 403:
        return `The server refused this page (403): ${message}`;
      case 429:
        return `The server is busy (429): ${message}`;
      default:
        return `The server refused the live session (${response.status}): ${message}`;
    }
  } catch {
    return `Could not reach the server at ${serverUrl()}. A page on another origin needs that origin in the server's --cors-origins.`;
  }
}

function base64(buffer: ArrayBuffer): string {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
