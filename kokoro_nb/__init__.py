"""kokoro_nb: Kokoro-82M text-to-speech in Jupyter — %%speak, a streaming player, controls, profiles.

Importing the package is cheap (the CLI imports it): everything below loads on first use.

>>> %load_ext kokoro_nb
>>> %%speak -v bf_emma
... Hello from the notebook.
>>> import kokoro_nb; kokoro_nb.say("Hello from code.")
"""

from __future__ import annotations

from importlib import import_module

__all__ = [
    "Player",
    "ProfileView",
    "Speech",
    "StaticAudio",
    "controls",
    "get_engine",
    "load_ipython_extension",
    "say",
    "set_engine",
    "stop",
    "unload_ipython_extension",
    "wait",
]

# public name → the module that defines it (imported when the name is first used)
_LAZY = {
    "Player": "._player",
    "ProfileView": "._profile_view",
    "Speech": "._speech",
    "StaticAudio": "._static_audio",
    "controls": "._controls",
    "get_engine": "._kernel_engine",
    "set_engine": "._kernel_engine",
    "load_ipython_extension": "._magics",
    "unload_ipython_extension": "._magics",
    "say": "._speech",
    "stop": "._speech",
    "wait": "._speech",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("kokoro-nb")
        except PackageNotFoundError:
            return "0+unknown"
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kokoro_nb' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
