"""The `kokoro-nb` command line: speak, voices, fetch, doctor, bench, demo, serve."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kokoro_engine import RequestMetrics

SAMPLE_PARAGRAPH = (
    "The sun had not yet risen over the hills when Mara left the village. "
    "She carried a lantern, a map, and a letter she had promised to deliver by noon. "
    "The road was quiet. Frost still clung to the fences, and somewhere far off a dog barked twice. "
    "By seven o'clock she had walked 5.5 kilometers, and the sky had turned from grey to gold. "
    "At the crossroads she stopped to read the map again. "
    "The letter was addressed to Dr. Elena Reyes, 42 Harbor Street. "
    "Nobody in the village knew what it said, and Mara had not asked. "
    "She only knew that it mattered, because the old man had pressed it into her hands with both of his. "
    "When the harbor came into view, the bells were ringing for the morning market. "
    "She smiled, tucked the lantern away, and walked down the hill toward the water."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    from kokoro_engine import KokoroError

    try:
        return int(args.run(args) or 0)
    except KokoroError as exc:
        print(f"kokoro-nb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kokoro-nb: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kokoro-nb",
        description="Kokoro-82M text-to-speech: speak text to a file, manage voices and assets, benchmark.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _command(sub, "speak", _speak, "speak text into an audio file", _speak_args)
    _command(sub, "voices", _voices, "list the voices and their languages", lambda p: None)
    _command(sub, "fetch", _fetch, "fetch the model and voices into the cache", _fetch_args)
    _command(
        sub,
        "doctor",
        _doctor,
        "say what was found where, and how to fix what is missing",
        lambda p: None,
    )
    _command(
        sub,
        "bench",
        _bench,
        "benchmark against kokoro-onnx (time to first audio, RTF, cold start)",
        _bench_args,
    )
    _command(
        sub, "demo", _demo, "speak a sample paragraph to a file and print its metrics", _demo_args
    )
    _command(
        sub, "serve", _serve, "serve an OpenAI-compatible speech API on this engine", _serve_args
    )
    return parser


def _command(
    sub: Any,
    name: str,
    run: Callable[[argparse.Namespace], int | None],
    help_text: str,
    add: Callable[[argparse.ArgumentParser], None],
) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    add(parser)
    parser.set_defaults(run=run)


def _voice_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v", "--voice", default="af_heart", help="voice name or blend 'af_heart:0.7,am_adam:0.3'"
    )
    parser.add_argument("-s", "--speed", type=float, default=1.0, help="0.5 to 2.0 (default 1.0)")
    parser.add_argument(
        "-l",
        "--lang",
        default=None,
        help="language code, e.g. en-us, en-gb, fr (default: the voice's)",
    )


def _speak_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the text to speak; '-' reads standard input")
    parser.add_argument("-o", "--output", required=True, help="output file: .wav, .flac or .ogg")
    _voice_args(parser)
    parser.add_argument("--phonemes", action="store_true", help="the text is phonemes, not words")
    parser.add_argument(
        "--no-normalize", action="store_true", help="read numbers and symbols as written"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _speak(args: argparse.Namespace) -> int:
    from kokoro_engine import Engine, check_format

    text = sys.stdin.read() if args.text == "-" else args.text
    check_format(args.output)
    engine = Engine(normalize=not args.no_normalize)
    audio = engine.synthesize(
        text, voice=args.voice, speed=args.speed, lang=args.lang, is_phonemes=args.phonemes
    )
    path = audio.save(args.output)
    _report(audio.metrics, args.json, f"wrote {path}")
    return 0


def _report(metrics: RequestMetrics, as_json: bool, headline: str) -> None:
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    print(headline)
    print(
        f"  audio {metrics['audio_s']:.2f} s in {metrics['total_s']:.2f} s (RTF {metrics['rtf']:.3f}), "
        f"first audio after {metrics['ttfa_s']:.3f} s, {len(metrics['pieces'])} pieces on {metrics['provider']}"
    )


def _voices(args: argparse.Namespace) -> int:
    from kokoro_engine import LANGUAGE_NAMES, VOICE_NAMES, voice_language

    for name in VOICE_NAMES:
        code = voice_language(name)
        print(f"{name:<16} {code:<6} {LANGUAGE_NAMES[code]}")
    return 0


def _fetch_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force", action="store_true", help="fetch again even if the cached files are valid"
    )


def _fetch(args: argparse.Namespace) -> int:
    from kokoro_engine import fetch_all

    found = fetch_all(force=args.force)
    print(f"model:  {found['model']}\nvoices: {found['voices']}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from kokoro_engine import diagnose

    healthy, lines = diagnose()
    print("\n".join(lines))
    return 0 if healthy else 1


def _bench_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--quick", action="store_true", help="skip the sweeps (with --quality: fp32 and fp16)"
    )
    parser.add_argument(
        "--quality",
        action="store_true",
        help="word error rate of every path on the Harvard sentences (needs pocketsphinx)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="do not run kokoro-onnx")
    parser.add_argument("--voice", default="af_heart")


def _bench(args: argparse.Namespace) -> int:
    if args.quality:
        from kokoro_engine import run_quality

        run_quality(
            voice=args.voice, quick=args.quick, baseline=not args.no_baseline, as_json=args.json
        )
        return 0
    from kokoro_engine import run_bench

    run_bench(
        SAMPLE_PARAGRAPH,
        voice=args.voice,
        quick=args.quick,
        baseline=not args.no_baseline,
        as_json=args.json,
    )
    return 0


def _demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="demo.wav")
    _voice_args(parser)


def _demo(args: argparse.Namespace) -> int:
    from kokoro_engine import Engine

    engine = Engine()
    audio = engine.synthesize(SAMPLE_PARAGRAPH, voice=args.voice, speed=args.speed, lang=args.lang)
    path = audio.save(args.output)
    _report(audio.metrics, False, f"wrote {path}")
    return 0


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8880)


def _serve(args: argparse.Namespace) -> int:
    try:
        from kokoro_nb.server import serve
    except ImportError as exc:
        print(
            f"kokoro-nb: error: the server needs its extra: pip install 'kokoro-nb[server]' ({exc})",
            file=sys.stderr,
        )
        return 2
    serve(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
