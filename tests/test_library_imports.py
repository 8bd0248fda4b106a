"""The mount imports its chart libraries on a background thread while callbacks import
what they need (`n4afs.tree.library_imports`): no thread may be handed a half-imported
package, and a thread importing what is already loaded does not wait."""

import subprocess
import sys
import textwrap

# sklearn's cycle: the package's __init__ imports a submodule that imports the package.
PACKAGE = {
    "__init__.py": "import os, time\n"
    "while not os.path.exists(os.environ['GO']):\n    time.sleep(0.01)\n"
    "from cyclic.base import clone  # noqa\n",
    "base.py": "from cyclic.exceptions import Warn  # noqa\ndef clone(x):\n    return x\n",
    "exceptions.py": "import cyclic  # noqa\nclass Warn(Warning):\n    pass\n",
}

RACE = textwrap.dedent(
    """
    import os, pathlib, sys, threading, time
    from n4afs.tree.library_imports import importing_aside
    errors = []
    def aside():
        try:
            with importing_aside():
                import cyclic  # noqa: F401
        except Exception as error:
            errors.append(repr(error))
    thread = threading.Thread(target=aside)
    thread.start()
    while "cyclic" not in sys.modules:  # the package is being initialized, its lock held
        time.sleep(0.01)
    import threading  # already loaded: must not wait for the background import
    def callback():  # asks for a submodule first, as `from sklearn.base import …` does
        try:
            from cyclic.base import clone  # noqa: F401
        except Exception as error:
            errors.append(repr(error))
    asking = threading.Thread(target=callback)
    asking.start()
    time.sleep(0.5)  # the callback is inside its import, waiting for the package
    pathlib.Path(os.environ["GO"]).touch()
    asking.join()
    thread.join()
    print(errors)
    """
)


def _race(tmp_path) -> str:
    package = tmp_path / "cyclic"
    package.mkdir()
    for name, text in PACKAGE.items():
        (package / name).write_text(text)
    env = {"PYTHONPATH": str(tmp_path), "GO": str(tmp_path / "go"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", RACE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_callback_is_never_handed_a_half_imported_package(tmp_path):
    assert _race(tmp_path) == "[]"
