"""The speech server's settings: the one place its limits, names and defaults are defined."""

from __future__ import annotations

HOST = "127.0.0.1"  # loopback: the server has no authentication
PORT = 8880
MAX_INPUT_CHARS = 4096  # OpenAI's own limit: clients already split longer texts
SPEECH_THREADS = 64  # Starlette's default pool has 40 threads for everything: speech gets its own
HEALTH_TIMEOUT_S = 60.0  # a cold machine can take this long to import and answer

DEFAULT_VOICE = "af_heart"
# OpenAI's voices → the Kokoro voice closest in kind (sex, accent, register). Five have a
# Kokoro namesake trained to sound like them; the rest go to well-graded voices.
OPENAI_VOICES = {
    "alloy": "af_alloy",
    "echo": "am_echo",
    "fable": "bm_fable",
    "onyx": "am_onyx",
    "nova": "af_nova",
    "shimmer": "af_bella",
    "coral": "af_heart",
    "sage": "af_sarah",
    "ash": "am_fenrir",
    "ballad": "bm_george",
    "verse": "am_puck",
    "marin": "af_kore",
    "cedar": "am_michael",
}
# Model names clients send; all run the same Kokoro-82M. Names starting "kokoro" also pass.
MODELS = ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")


def known_model(name: str) -> bool:
    """Whether a client's model name is one this server answers to (case and spaces aside)."""
    model = name.strip().lower()
    return model in MODELS or model.startswith("kokoro")
