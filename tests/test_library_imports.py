"""The mount imports its chart libraries on a background thread while callbacks import
what they need (`n4afs.tree.library_imports`): no thread may be handed a half-imported
package, and a thread importing what is already loaded does not wait."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

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


# Two turns of background imports: a slow one (`first`), then another (`second`) held until
# the test says; a callback importing something else while the first runs.
TURNS = textwrap.dedent(
    """
    import os, pathlib, sys, threading, time
    from n4afs.tree.library_imports import importing_in_turns
    order = []
    def first():
        import first_turn  # noqa: F401
        order.append("first turn")
    def second():
        order.append("second turn")
        while not os.path.exists(os.environ["GO2"]):  # scikit-learn's ~2 s, held open
            time.sleep(0.01)
    thread = threading.Thread(target=importing_in_turns, args=([first, second],))
    thread.start()
    while "first_turn" not in sys.modules:  # the first turn is importing
        time.sleep(0.01)
    def callback():
        import light  # noqa: F401
        order.append("callback")
    asking = threading.Thread(target=callback)
    asking.start()
    time.sleep(0.3)  # the callback waits at `__import__` for the first turn
    pathlib.Path(os.environ["GO1"]).touch()
    asking.join(timeout=10)
    order.append("callback done" if not asking.is_alive() else "callback still waiting")
    pathlib.Path(os.environ["GO2"]).touch()
    asking.join()
    thread.join()
    print(order)
    """
)


def test_a_callback_waits_for_the_turn_in_progress_not_for_the_next(tmp_path):
    (tmp_path / "first_turn.py").write_text(
        "import os, time\nwhile not os.path.exists(os.environ['GO1']):\n    time.sleep(0.01)\n"
    )
    (tmp_path / "light.py").write_text("VALUE = 1\n")
    env = {
        "PYTHONPATH": f"{tmp_path}:{REPO}",
        "GO1": str(tmp_path / "go1"),
        "GO2": str(tmp_path / "go2"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", TURNS], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(["first turn", "callback", "callback done", "second turn"])
