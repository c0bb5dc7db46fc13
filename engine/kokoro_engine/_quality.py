"""`kokoro-nb bench --quality`: the Harvard sentences through every path a user can get, word error rates side by side.

Each path speaks the sentences; pocketsphinx (offline, its bundled US English model)
transcribes what it said; the word error rate against the text is reported per path with a
bootstrap interval, each path's paired difference from the first path (so a gap of 0.02 can be
judged real or not), and the sentences each path said worst. Paths are interleaved block by
block so a noisy machine slows every path alike. The recognizer is deterministic (batch
normalization per utterance); the run re-transcribes a few clips to show it.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._baseline import SHORT
from ._engine import Engine
from ._errors import KokoroError
from ._types import SAMPLE_RATE, FloatArray

HARVARD = Path(__file__).with_name("data") / "harvard.txt"
RECOGNIZER_RATE = 16_000
BOOTSTRAP_DRAWS = 2000
PARAGRAPH = 3  # sentences per streamed paragraph

Speak = Callable[[str], FloatArray]


class RecognizerMissingError(KokoroError):
    """The quality bench's offline recognizer (pocketsphinx) is not installed."""


@dataclass(frozen=True)
class SpeechPath:
    """One way a user gets speech: text in, float32 samples at 24 kHz out, `group` sentences a call."""

    speak: Speak
    group: int = 1


def harvard_sentences() -> list[str]:
    """The 60 Harvard sentences (IEEE 1969, lists 1 to 6) shipped with the engine."""
    lines = HARVARD.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


_DIGIT_GROUPS = re.compile(r"(?<=\d),(?=\d{3})")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NOT_WORD = re.compile(r"[^a-z']+")


def words(text: str) -> list[str]:
    """Words to score: lowercase, numbers spelled out, punctuation and hyphens gone, inner apostrophes kept."""
    from num2words import num2words

    text = _DIGIT_GROUPS.sub("", text.lower())
    text = _NUMBER.sub(lambda m: f" {num2words(m.group())} ", text)
    tokens = (token.strip("'") for token in _NOT_WORD.sub(" ", text).split())
    return [token for token in tokens if token]


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(
                    previous[j] + 1,  # the reference word was dropped
                    current[j - 1] + 1,  # an extra word was heard
                    previous[j - 1] + (ref_word != hyp_word),
                )
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Edit distance over the reference's word count, after `words` normalizes both."""
    ref = words(reference)
    if not ref:
        raise KokoroError("word error rate needs a reference with at least one word")
    return edit_distance(ref, words(hypothesis)) / len(ref)


def to_recognizer_rate(samples: FloatArray) -> FloatArray:
    """24 kHz to 16 kHz by FFT: the band up to 8 kHz kept exactly, nothing above it folded back."""
    # Whole output samples need a length that is a multiple of 3; the zeros added are silence.
    padded = np.concatenate([samples, np.zeros(-len(samples) % 3, np.float32)])
    out_len = len(padded) * RECOGNIZER_RATE // SAMPLE_RATE
    spectrum = np.fft.rfft(padded.astype(np.float64))[: out_len // 2 + 1]
    if out_len % 2 == 0:
        spectrum[-1] = 0  # the new Nyquist bin has no unique real value: drop it (8 kHz, no speech)
    resampled = np.fft.irfft(spectrum, out_len) * (out_len / len(padded))
    return resampled.astype(np.float32)


class Recognizer:
    """pocketsphinx with its bundled US English model, one whole utterance a call."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise RecognizerMissingError(
                "the quality bench transcribes with pocketsphinx, which is not installed: "
                "pip install 'pocketsphinx>=5,<6' (it is in kokoro-nb's dev dependency group)"
            ) from exc
        self._decoder = Decoder(samprate=RECOGNIZER_RATE, loglevel="FATAL")

    def transcribe(self, samples: FloatArray) -> str:
        pcm = np.clip(to_recognizer_rate(samples) * 32767.0, -32768, 32767).astype("<i2")
        self._decoder.start_utt()
        self._decoder.process_raw(pcm.tobytes(), full_utt=True)  # batch normalization: no drift
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def quality_report(
    paths: Mapping[str, SpeechPath | Speak],
    sentences: Sequence[str] | None = None,
    *,
    recognizer: Recognizer | None = None,
    worst: int = 5,
    recheck: int = 10,
    control: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Speak `sentences` through every path, transcribe, and score; the first path is the baseline.

    A plain callable is a path fed one sentence a call. Each path's `group` must divide the
    largest group, so blocks of that many sentences line every path up for paired comparison.
    `control` adds a row: the first path's own audio, 5 ms later. Nothing a listener hears
    changed, so its difference from the first path is the recognizer's own jitter.
    """
    sentences = list(sentences if sentences is not None else harvard_sentences())
    resolved, block = _resolve(paths, sentences)
    recognizer = recognizer or Recognizer()
    first_name = next(iter(resolved))
    shifted = f"{first_name} +5 ms (control)"
    groups = {first_name: resolved[first_name].group}
    groups |= {shifted: groups[first_name]} if control else {}
    groups |= {name: p.group for name, p in resolved.items()}
    units: dict[str, list[dict[str, Any]]] = {name: [] for name in groups}
    kept: list[tuple[FloatArray, str]] = []
    for start in range(0, len(sentences), block):
        if progress:
            progress(
                f"sentences {start + 1}-{min(start + block, len(sentences))} of {len(sentences)}"
            )
        for name, path in resolved.items():
            for first in range(start, min(start + block, len(sentences)), path.group):
                text = " ".join(sentences[first : first + path.group])
                begin = time.perf_counter()
                samples = np.asarray(path.speak(text), dtype=np.float32)
                synth_s = time.perf_counter() - begin
                unit = _score(recognizer, text, samples, first, synth_s)
                units[name].append(unit)
                if name != first_name:
                    continue
                if len(kept) < recheck:
                    kept.append((samples, unit["hypothesis"]))
                if control:
                    late = np.concatenate([np.zeros(SAMPLE_RATE // 200, np.float32), samples])
                    units[shifted].append(_score(recognizer, text, late, first, None))
    baseline = units[first_name]
    rng = np.random.default_rng(0)
    return {
        "sentences": len(sentences),
        "recognizer": {
            "name": "pocketsphinx en-us",
            "repeat_identical": sum(recognizer.transcribe(s) == h for s, h in kept),
            "repeats": len(kept),
        },
        "paths": {
            name: _summary(rows, baseline, block, rng, worst) | {"group": groups[name]}
            for name, rows in units.items()
        },
    }


def _resolve(
    paths: Mapping[str, SpeechPath | Speak], sentences: Sequence[str]
) -> tuple[dict[str, SpeechPath], int]:
    """Every path as a SpeechPath, and the block of sentences that lines all of them up."""
    if not sentences or not paths:
        raise KokoroError("the quality bench needs at least one sentence and one path")
    resolved = {
        name: p if isinstance(p, SpeechPath) else SpeechPath(p) for name, p in paths.items()
    }
    block = max(p.group for p in resolved.values())
    if any(p.group < 1 or block % p.group for p in resolved.values()):
        groups = ", ".join(f"{name}={p.group}" for name, p in resolved.items())
        raise KokoroError(f"every path's group must divide {block}: {groups}")
    return resolved, block


def _score(
    recognizer: Recognizer, text: str, samples: FloatArray, first: int, synth_s: float | None
) -> dict[str, Any]:
    """One unit's transcript and errors; `synth_s` is None where no synthesis was timed."""
    hypothesis = recognizer.transcribe(samples)
    ref = words(text)
    return {
        "first": first,
        "reference": text,
        "hypothesis": hypothesis,
        "errors": edit_distance(ref, words(hypothesis)),
        "words": len(ref),
        "audio_s": len(samples) / SAMPLE_RATE,
        "synth_s": synth_s,
    }


def _summary(
    rows: list[dict[str, Any]],
    baseline: list[dict[str, Any]],
    block: int,
    rng: np.random.Generator,
    worst: int,
) -> dict[str, Any]:
    errors = np.array([r["errors"] for r in rows], float)
    counts = np.array([r["words"] for r in rows], float)
    draws = _bootstrap(rng, len(rows))
    boot = (errors[draws].sum(1)) / counts[draws].sum(1)
    audio_s = sum(r["audio_s"] for r in rows)
    ranked = sorted(rows, key=lambda r: (r["errors"] / r["words"], r["errors"]), reverse=True)
    return {
        "wer": round(errors.sum() / counts.sum(), 4),
        "wer_ci95": [round(float(x), 4) for x in np.percentile(boot, [2.5, 97.5])],
        "wer_se": round(float(boot.std()), 4),
        "vs_first": _paired(rows, baseline, block, rng),
        "words": int(counts.sum()),
        "errors": int(errors.sum()),
        "audio_s": round(audio_s, 2),
        "synth_rtf": _rtf(rows, audio_s),
        "worst": [
            {
                "wer": round(r["errors"] / r["words"], 3),
                "reference": r["reference"],
                "hypothesis": r["hypothesis"],
            }
            for r in ranked[:worst]
            if r["errors"]
        ],
    }


def _rtf(rows: list[dict[str, Any]], audio_s: float) -> float | None:
    timed = [r["synth_s"] for r in rows if r["synth_s"] is not None]
    return round(sum(timed) / audio_s, 4) if timed and audio_s else None


def _paired(
    rows: list[dict[str, Any]],
    baseline: list[dict[str, Any]],
    block: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """This path's WER minus the baseline's, with a bootstrap over the blocks both share."""
    diff = _per_block(rows, block) - _per_block(baseline, block)
    counts = _per_block(rows, block, key="words")
    draws = _bootstrap(rng, len(diff))
    boot = diff[draws].sum(1) / counts[draws].sum(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {
        "delta": round(float(diff.sum() / counts.sum()), 4),
        "ci95": [round(float(low), 4), round(float(high), 4)],
        "real": bool(low > 0 or high < 0),
    }


def _per_block(rows: list[dict[str, Any]], block: int, key: str = "errors") -> FloatArray:
    last = max(r["first"] for r in rows) // block
    totals = np.zeros(last + 1)
    for r in rows:
        totals[r["first"] // block] += r[key]
    return totals


def _bootstrap(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, n, size=(BOOTSTRAP_DRAWS, n))


# --- the paths a user can get --------------------------------------------------------------


def user_paths(
    stack: ExitStack, voice: str, *, quick: bool = False, baseline: bool = True
) -> dict[str, SpeechPath]:
    """Every configuration a user can reach, each engine built once and closed by `stack`.

    `quick` leaves out the float variants; `baseline=False` leaves out kokoro-onnx.
    """

    def engine(**kwargs: Any) -> Engine:
        built = stack.enter_context(Engine(audio_cache_mb=0, **kwargs))
        built.wait_warm()
        return built

    split = engine(variant="int8")
    paths = {
        "split int8": _whole(split, voice),
        "single int8": _whole(engine(variant="int8", split=False), voice),
    }
    if not quick:
        for variant in ("fp32", "fp16"):
            paths[f"split {variant}"] = _whole(engine(variant=variant), voice)
    paths["streamed"] = SpeechPath(_streamed(split, voice), group=PARAGRAPH)
    onnx = _kokoro_onnx(stack, voice) if baseline else None
    if onnx is not None:
        paths["kokoro-onnx"] = onnx
    for path in paths.values():
        path.speak(SHORT)  # first runs build arenas; not what a warm user waits for
    return paths


def _whole(engine: Engine, voice: str) -> SpeechPath:
    return SpeechPath(lambda text: engine.synthesize(text, voice=voice).samples)


def _streamed(engine: Engine, voice: str) -> Speak:
    def speak(text: str) -> FloatArray:
        # Chunks already carry their pauses: joined, they are what the player plays.
        with engine.stream(text, voice=voice) as stream:
            return np.concatenate([chunk.samples for chunk in stream])

    return speak


def _kokoro_onnx(stack: ExitStack, voice: str) -> SpeechPath | None:
    """kokoro-onnx 0.6.1 on the same model file and voice, when it is installed."""
    from . import _assets as assets
    from ._baseline import Baseline, available, voices_npz

    if not available():
        return None
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    kokoro = Baseline(assets.model_path(), voices_npz(voice, folder), voice).kokoro

    def speak(text: str) -> FloatArray:
        samples, rate = kokoro.create(text, voice=voice, lang="en-us")
        if rate != SAMPLE_RATE:
            raise KokoroError(f"kokoro-onnx returned {rate} Hz audio, expected {SAMPLE_RATE}")
        return np.asarray(samples, dtype=np.float32)

    return SpeechPath(speak)


def run_quality(
    *,
    voice: str = "af_heart",
    quick: bool = False,
    baseline: bool = True,
    as_json: bool = False,
    extra: Mapping[str, SpeechPath | Speak] | None = None,
) -> dict[str, Any]:
    """Build the user paths (plus `extra`), run the Harvard sentences, print a table or JSON."""
    recognizer = Recognizer()  # before minutes of building: a missing recognizer fails now
    begin = time.perf_counter()
    with ExitStack() as stack:
        _say(as_json, "building the paths (deriving a float variant takes minutes once) ...")
        paths: dict[str, SpeechPath | Speak] = {
            **user_paths(stack, voice, quick=quick, baseline=baseline)
        }
        paths.update(extra or {})
        report = quality_report(
            paths, recognizer=recognizer, progress=None if as_json else _progress
        )
    report["voice"] = voice
    report["wall_s"] = round(time.perf_counter() - begin, 1)
    print(json.dumps(report, indent=2) if as_json else render(report))
    return report


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def render(report: dict[str, Any]) -> str:
    paths = report["paths"]
    first = next(iter(paths))
    rec = report["recognizer"]
    width = max(map(len, paths)) + 2
    lines = [
        f"{report['sentences']} Harvard sentences, voice {report.get('voice', '?')}, "
        f"recognizer {rec['name']} (same audio twice: {rec['repeat_identical']}/{rec['repeats']} identical)",
        "",
        f"{'path':<{width}}{'WER':>7}{'95% CI':>17}{'vs ' + first:>15}{'95% CI':>19}"
        f"{'words':>7}{'audio':>9}{'RTF':>7}",
    ]
    for name, p in paths.items():
        low, high = p["wer_ci95"]
        vs = p["vs_first"]
        delta = "" if name == first else f"{vs['delta']:+.3f}{'*' if vs['real'] else ' '}"
        vs_ci = "" if name == first else f"[{vs['ci95'][0]:+.3f}, {vs['ci95'][1]:+.3f}]"
        lines.append(
            f"{name:<{width}}{p['wer']:>7.3f}{f'[{low:.3f}, {high:.3f}]':>17}{delta:>15}{vs_ci:>19}"
            f"{p['words']:>7}{p['audio_s']:>8.1f}s{_or_dash(p['synth_rtf']):>7}"
        )
    lines.append(
        "(* the paired 95% interval excludes 0; the control is the first path's audio 5 ms later,"
        f" its delta the recognizer's jitter; streamed is scored per {PARAGRAPH}-sentence paragraph)"
    )
    for name, p in paths.items():
        lines += ["", f"worst of {name}:"]
        lines += [
            f"  {w['wer']:.2f}  ref: {w['reference']}\n        hyp: {w['hypothesis']}"
            for w in p["worst"]
        ] or ["  (no errors)"]
    return "\n".join(lines)


def _or_dash(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
