"""``python -m hearken_client``: a command line over the client that mirrors ``hearken stream``
(same flags, same output), for machines with Python but no hearken binary.

    python -m hearken_client stream talk.wav --server HOST:PORT
    arecord -f S16_LE -r 16000 -c 1 -t raw | python -m hearken_client stream - --server HOST:PORT
    python -m hearken_client recognize talk.mp3
    python -m hearken_client models

On a terminal, ``stream`` rewrites the tentative text in place and gives each final its own
line; piped, it prints one JSON object per update (``--format`` chooses).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Optional, TextIO

from .client import Client
from .config import Config
from .connection import DEFAULT_SERVER
from .errors import HearkenError
from .retry import Retry
from .types import ModelInfo, Transcript, Update


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with Client(
            args.server, api_key=args.api_key, ca=args.ca, retry=Retry(attempts=args.retries)
        ) as client:
            return args.run(client, args)
    except (HearkenError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hearken_client", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    stream = commands.add_parser("stream", help="stream a file or stdin; print the transcript as it settles")
    stream.add_argument(
        "input",
        help="audio file (WAV streams live; FLAC, Ogg and MP3 give finals only), or - for raw 16-bit "
        "little-endian PCM on stdin (see --rate, --channels)",
    )
    _pcm_options(stream, "stdin PCM")
    stream.add_argument(
        "--policy",
        choices=["local-agreement", "align-att"],
        default="",
        help="which rule commits words before an utterance ends: two agreeing hypotheses "
        "(local-agreement) or one, for words the model heard whole (align-att: sooner); "
        "default: the server's",
    )
    stream.add_argument(
        "--fast",
        action="store_true",
        help="send a file as fast as the server takes it, not at real-time pace",
    )
    stream.set_defaults(run=_stream)
    recognize = commands.add_parser("recognize", help="transcribe a whole file")
    recognize.add_argument("input", help="audio file, or - for a file or raw PCM16 on stdin")
    _pcm_options(recognize, "raw PCM on stdin")
    recognize.set_defaults(run=_recognize)
    models = commands.add_parser("models", help="list the server's models")
    models.set_defaults(run=_models)
    for command in (stream, recognize):
        _transcription_options(command)
    for command in (stream, recognize, models):
        _connection_options(command)
    return parser


def _pcm_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--rate", type=int, default=16_000, help=f"sample rate of {what} (default 16000)")
    parser.add_argument(
        "--channels", type=int, default=1, help=f"channels of {what}, interleaved (default 1)"
    )


def _transcription_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-l",
        "--language",
        default="",
        help="spoken language (ISO code or name); unset, a multilingual model detects it",
    )
    parser.add_argument("--translate", action="store_true", help="translate to English (multilingual models)")
    parser.add_argument("--prompt", default="", help="text that primes the model: names, spelling, style")
    parser.add_argument("--model", default="", help="model id (see `models`); unset, the server's")


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=os.environ.get("HEARKEN_SERVER", DEFAULT_SERVER),
        help="HOST:PORT, http://HOST:PORT, or https://HOST:PORT (grpcs://) for TLS "
        "(env HEARKEN_SERVER; default %(default)s)",
    )
    parser.add_argument(
        "--api-key", help="API key, sent as `authorization: Bearer KEY` (env HEARKEN_API_KEY)"
    )
    parser.add_argument("--ca", help="PEM certificate of a CA to trust for TLS (default: gRPC's roots)")
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries of a refusal the server says is worth retrying, before any result (default 3)",
    )
    parser.add_argument(
        "--format", choices=["text", "jsonl"], help="output format; text on a terminal, jsonl when piped"
    )


def _config(args: argparse.Namespace) -> Config:
    return Config(
        language=args.language,
        model=args.model,
        prompt=args.prompt,
        translate=args.translate,
        sample_rate=args.rate,
        channels=args.channels,
        policy=getattr(args, "policy", ""),
    )


def _format(args: argparse.Namespace) -> str:
    return args.format or ("text" if sys.stdout.isatty() else "jsonl")


def _stream(client: Client, args: argparse.Namespace) -> int:
    audio = sys.stdin.buffer if args.input == "-" else args.input
    printer = Printer(_format(args), sys.stdout)
    try:
        with client.stream(audio, _config(args), realtime=args.input != "-" and not args.fast) as updates:
            for update in updates:
                printer.print(update)
    finally:
        printer.finish()
    return 0


def _recognize(client: Client, args: argparse.Namespace) -> int:
    audio = sys.stdin.buffer.read() if args.input == "-" else args.input
    transcript: Transcript = client.recognize(audio, _config(args))
    if _format(args) == "jsonl":
        print(json.dumps(asdict(transcript)))
    else:
        print(transcript.text.strip())
    return 0


def _models(client: Client, args: argparse.Namespace) -> int:
    models: list[ModelInfo] = client.list_models()
    if _format(args) == "jsonl":
        for model in models:
            print(json.dumps(asdict(model)))
        return 0
    print(f"{'id':<16} {'loaded':<7} {'cached':<7} {'device':<8} languages")
    for m in models:
        languages = "multilingual" if m.multilingual else ",".join(m.languages)
        flags = f"{'yes' if m.loaded else 'no':<7} {'yes' if m.available else 'no':<7}"
        print(f"{m.id + (' *' if m.is_default else ''):<16} {flags} {m.device or '-':<8} {languages}")
    return 0


class Printer:
    """Prints updates as ``hearken stream`` does. In text on a terminal the tentative line is
    rewritten in place (committed plain, tentative dimmed) and each final replaces it; in text
    on a pipe, where rewriting would leave control codes in a file, only finals are printed."""

    def __init__(self, format: str, out: TextIO) -> None:
        self._format = format
        self._out = out
        self._live = format == "text" and out.isatty()
        self._line_open = False

    def print(self, update: Update) -> None:
        if self._format == "jsonl":
            self._out.write(json.dumps(update.to_json()) + "\n")
        elif update.is_final:
            self._final(update.committed.strip())
        elif self._live:
            self._out.write(f"\r\x1b[2K{update.committed.lstrip()}\x1b[2m{update.tentative}\x1b[0m")
            self._line_open = True
        self._out.flush()

    def _final(self, text: str) -> None:
        if self._live:
            if self._line_open or text:
                self._out.write(f"\r\x1b[2K{text}\n")
            self._line_open = False
        elif text:
            self._out.write(text + "\n")

    def finish(self) -> None:
        if self._line_open:
            self._out.write("\n")
            self._out.flush()
