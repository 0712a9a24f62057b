"""What every fuzz target shares: Django settings, a seed corpus copied to a scratch folder, the run.

Run one target: `python fuzz/<target>.py [-runs=100000] [libFuzzer flags]`; `make fuzz` runs them all.
A crash (any exception other than the ones the target allows, or a failed invariant) stops the run,
prints the input and writes it to `crash-<sha1>` in the working folder for replay:
`python fuzz/<target>.py crash-<sha1>`.
"""

import importlib
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS = 100_000


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CACHE_URL", "locmemcache://")
    import django

    django.setup()


def instrumented(name: str, *, also: tuple[str, ...] = ()) -> ModuleType:
    """Import `name` afresh with coverage instrumentation (and modules whose names start with `also`).

    Django's setup has usually imported the code under test already, and instrument_imports() only
    sees modules imported inside it; instrument_all() would take minutes over Django and botocore.
    """
    import atheris

    for key in list(sys.modules):
        if key == name or (also and key.startswith(also)):
            del sys.modules[key]
    with atheris.instrument_imports():
        return importlib.import_module(name)


def fuzz(test_one_input: Callable[[bytes], None], *, seeds: Iterable[bytes], name: str) -> None:
    import atheris

    argv = list(sys.argv)
    replay = [arg for arg in argv[1:] if not arg.startswith("-")]
    if not replay:
        # libFuzzer writes new inputs into its first corpus folder: give it a fresh copy of the seeds
        # (var/ is not versioned; the folder is replaced on every run).
        corpus = ROOT / "var" / "fuzz" / name
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        for number, seed in enumerate(seeds):
            (corpus / f"seed-{number}").write_bytes(seed)
        argv.append(str(corpus))
        if not any(arg.startswith("-runs=") for arg in argv):
            argv.append(f"-runs={DEFAULT_RUNS}")
        crashes = ROOT / "var" / "fuzz" / "crashes"
        crashes.mkdir(parents=True, exist_ok=True)
        flags = ("-seed=1", "-max_len=8192", "-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1",
                 f"-artifact_prefix={crashes}/{name}-")  # fmt: skip
        for flag in flags:
            if not any(arg.startswith(flag.split("=")[0] + "=") for arg in argv):
                argv.append(flag)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()  # exits the process when the runs are done, with status 0, or on the first crash
