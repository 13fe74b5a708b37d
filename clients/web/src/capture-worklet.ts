// The microphone's audio thread: turns the capture into PCM16 messages of about 100 ms for the
// page to send (an AudioWorklet, because ScriptProcessorNode is deprecated and runs on the main
// thread, where a busy page would drop audio). Runs in AudioWorkletGlobalScope: no DOM types.

declare const sampleRate: number;
declare function registerProcessor(name: string, ctor: unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}
interface MessagePort {
  postMessage(message: unknown, transfer: unknown[]): void;
}

/** What the page receives: little-endian PCM16 at `sampleRate`, and its RMS level (0..1). */
export interface CaptureMessage {
  pcm: ArrayBuffer;
  rms: number;
}

/** Samples per message: 100 ms, a tenth of the context's rate. */
const FRAME = Math.round(sampleRate / 10);

class Pcm16Capture extends AudioWorkletProcessor {
  private buffer = new Int16Array(FRAME);
  private filled = 0;
  private energy = 0;

  process(inputs: Float32Array[][]): boolean {
    // The first channel: the capture is asked for mono; a stereo device's left is speech too.
    const channel = inputs[0]?.[0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        const sample = Math.max(-1, Math.min(1, channel[i]));
        this.energy += sample * sample;
        this.buffer[this.filled++] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
        if (this.filled === FRAME) this.flush();
      }
    }
    return true;
  }

  private flush(): void {
    const message: CaptureMessage = {
      pcm: this.buffer.buffer as ArrayBuffer,
      rms: Math.sqrt(this.energy / FRAME),
    };
    this.port.postMessage(message, [message.pcm]);
    this.buffer = new Int16Array(FRAME);
    this.filled = 0;
    this.energy = 0;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
