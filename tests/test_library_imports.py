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


WHILE_IMPORTING = textwrap.dedent(
    """
    import sys
    from n4afs.tree.library_imports import importing_in_turns
    seen = []
    before = sys.getswitchinterval()
    importing_in_turns([lambda: seen.append(sys.getswitchinterval())])
    print(before, seen[0], sys.getswitchinterval())
    """
)


def test_callbacks_get_the_interpreter_promptly_while_the_turns_import_and_after():
    """A callback thread waits at most a short switch interval behind the importing thread
    (a cold `ls -la` asks ~100 of them in turn); Python's own interval is back afterwards."""
    done = subprocess.run(
        [sys.executable, "-c", WHILE_IMPORTING],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    before, during, after = (float(v) for v in done.stdout.split())
    assert during <= 0.001 < before == after


# matplotlib loads its backend with `importlib.import_module`, inside `savefig`: a callback
# inside that call holds the backend's module lock while its body imports more.
BACKEND = {
    "__init__.py": "",
    "backend.py": "import os, time\n"
    "while not os.path.exists(os.environ['GO']):\n    time.sleep(0.01)\n"
    "import loader.helper  # noqa\n",
    "helper.py": "VALUE = 1\n",
}

MODULE_IMPORT = textwrap.dedent(
    """
    import importlib, os, pathlib, sys, threading, time
    from n4afs.tree import library_imports
    started = threading.Event()
    def first():  # the window is set up: a callback begins loading the backend
        started.set()
        while "loader.backend" not in sys.modules:
            time.sleep(0.01)
    def step():  # the window's turn loads the same backend
        importlib.import_module("loader.backend")
    window = threading.Thread(target=library_imports.importing_in_turns, args=([step], first))
    window.start()
    started.wait()
    def callback():
        importlib.import_module("loader.backend")
    thread = threading.Thread(target=callback)
    thread.start()
    time.sleep(0.3)  # the turn is waiting by now
    pathlib.Path(os.environ["GO"]).touch()
    thread.join(20)
    window.join(20)
    print("deadlocked" if thread.is_alive() or window.is_alive() else "done", flush=True)
    os._exit(0)  # a deadlocked thread would keep the interpreter from exiting
    """
)


def test_a_callback_loading_a_module_by_name_never_deadlocks_with_the_window(tmp_path):
    package = tmp_path / "loader"
    package.mkdir()
    for name, text in BACKEND.items():
        (package / name).write_text(text)
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "GO": str(tmp_path / "go"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", MODULE_IMPORT], env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
