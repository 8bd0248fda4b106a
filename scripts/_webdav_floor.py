"""The WebDAV floor for scripts/bench_serve.py: WsgiDAV's own `FilesystemProvider` over a
plain folder, on cheroot, configured as `n4afs serve` configures WsgiDAV (read-only, no lock
manager, no dead properties, 1 MiB GET blocks, anonymous).

What serving plain files over WsgiDAV costs on this machine, with no n4afs code in the
path: the WebDAV counterpart of bench_mount's minimal FUSE filesystem. `n4afs serve`
against this isolates n4afs's share; this against the FUSE mount is the protocol's.

Run: python scripts/_webdav_floor.py FOLDER PORT   (serves until SIGTERM)
"""

from __future__ import annotations

import signal
import sys

from cheroot import wsgi
from wsgidav.fs_dav_provider import FilesystemProvider
from wsgidav.wsgidav_app import WsgiDAVApp


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # cheroot's serve loop stops on it, as `n4afs serve` does


def main() -> None:
    folder, port = sys.argv[1], int(sys.argv[2])
    config = {
        "provider_mapping": {"/": FilesystemProvider(folder, readonly=True)},
        "simple_dc": {"user_mapping": {"*": True}},
        "http_authenticator": {"domain_controller": None},
        "lock_storage": None,
        "property_manager": None,
        "block_size": 1 << 20,
        "verbose": 1,
        "logging": {"enable": False},
        "dir_browser": {"enable": False},
        "suppress_version_info": True,
    }
    server = wsgi.Server(("127.0.0.1", port), WsgiDAVApp(config), server_name="floor")
    signal.signal(signal.SIGTERM, _interrupt)
    server.prepare()
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
