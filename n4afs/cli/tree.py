"""Browsing the tree: `ls`, `tree`, `cat`, `open`, and serving it: `mount`, `umount`, `serve`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from n4afs.cli.common import echo, human_bytes, missing, tree_and_path, workspace


@click.command("ls")
@click.argument("path", default="/")
@click.option("-l", "long", is_flag=True, help="Sizes and dates.")
@click.pass_context
def ls_cmd(ctx, path, long) -> None:
    """List a folder of the workspace tree (the view the mount shows)."""
    from datetime import datetime

    tree, parts = tree_and_path(ctx, path)
    entries = tree.list_dir(parts)
    if entries is None:
        node = tree.lookup(parts)
        if node is None:
            raise missing(path)
        entries = {node.name: node}
    for name, node in entries.items():
        entry = name + ("/" if node.is_dir else "")
        if long:
            when = datetime.fromtimestamp(node.mtime).strftime("%Y-%m-%d %H:%M")
            size = "-" if node.is_dir else human_bytes(node.size)
            echo(f"{size:>10}  {when}  {entry}")
        else:
            echo(entry)


@click.command("tree")
@click.argument("path", default="/")
@click.option("-L", "depth", default=2, show_default=True, help="How many levels to show.")
@click.pass_context
def tree_cmd(ctx, path, depth) -> None:
    """Show the workspace tree below PATH, like `tree -L`."""
    tree, parts = tree_and_path(ctx, path)
    if tree.list_dir(parts) is None:
        raise missing(path)
    echo("/" + "/".join(parts))

    def show(at: tuple, prefix: str, level: int) -> None:
        entries = list(tree.list_kinds(at) or ())
        for i, (name, is_dir) in enumerate(entries):
            last = i == len(entries) - 1
            echo(f"{prefix}{'└── ' if last else '├── '}{name}{'/' if is_dir else ''}")
            if is_dir and level < depth:
                show((*at, name), prefix + ("    " if last else "│   "), level + 1)

    show(parts, "", 1)


@click.command("cat")
@click.argument("path")
@click.pass_context
def cat_cmd(ctx, path) -> None:
    """Write a file of the tree to standard output."""
    tree, parts = tree_and_path(ctx, path)
    node = tree.lookup(parts)
    if node is None or node.is_dir:
        raise missing(path)
    sys.stdout.buffer.write(tree.read(node))


@click.command("open")
@click.argument("path")
@click.pass_context
def open_cmd(ctx, path) -> None:
    """Print the real (read-only) file behind PATH when it is a stored blob.

    For tools that want a path on disk: model .pkl files are blobs. Rendered files
    (CSV, YAML, PNG) have no file of their own: use `n4afs cat` or the mount.
    """
    tree, parts = tree_and_path(ctx, path)
    node = tree.lookup(parts)
    if node is None or node.is_dir:
        raise missing(path)
    real = tree.real_path(node)
    if real is None:
        exc = click.ClickException(
            f"/{path.strip('/')} is rendered on demand and has no file "
            "on disk; read it with `n4afs cat` or through the mount"
        )
        exc.exit_code = 2
        raise exc
    echo(real)


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="[WORKSPACE] MOUNTPOINT")
@click.option("--foreground", is_flag=True, help="Stay attached (Ctrl-C unmounts).")
@click.option(
    "--allow-other",
    is_flag=True,
    help="Let other users read the mount (needs user_allow_other in /etc/fuse.conf).",
)
@click.pass_context
def mount(ctx, paths, foreground, allow_other) -> None:
    """Mount the workspace tree read-only at MOUNTPOINT (FUSE).

    Files open in Excel, file managers and shell tools; new results appear while a run
    writes. Private to you unless --allow-other. Runs in the background unless
    --foreground; stop it with `n4afs umount MOUNTPOINT`.
    """
    if len(paths) > 2:
        raise click.UsageError("give at most a WORKSPACE and a MOUNTPOINT")
    ws = workspace(paths[0] if len(paths) == 2 else ctx.obj["workspace"])
    mountpoint = Path(paths[-1]).expanduser().absolute()
    log_path = ws.mount(mountpoint, foreground=foreground, allow_other=allow_other)
    if log_path is None:  # --foreground: served until unmounted
        return
    echo(f"mounted {ws.path} at {mountpoint} (log: {log_path})")
    echo(f"browse it: ls {mountpoint}/runs   stop it: n4afs umount {mountpoint}")


@click.command()
@click.argument("mountpoint")
def umount(mountpoint) -> None:
    """Unmount an n4afs mount (also clears a stale one left by a killed daemon)."""
    from n4afs.surfaces.mount import unmount

    echo(f"{unmount(Path(mountpoint).expanduser().absolute())}: {mountpoint}")


@click.command()
@click.argument("workspace_path", required=False, metavar="[WORKSPACE]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4918, show_default=True, help="Port (0: any free port).")
@click.option("--foreground", is_flag=True, help="Stay attached (Ctrl-C stops).")
@click.option("--user", help="User name clients log in with (default n4afs).")
@click.option(
    "--password",
    envvar="N4AFS_SERVE_PASSWORD",
    help="Their password (default: $N4AFS_SERVE_PASSWORD; --token generates one).",
)
@click.option("--token", is_flag=True, help="Generate a password and show it once.")
@click.option("--certfile", type=click.Path(dir_okay=False), help="Serve HTTPS: certificate.")
@click.option("--keyfile", type=click.Path(dir_okay=False), help="Serve HTTPS: its key.")
@click.option("--stop", is_flag=True, help="Stop the workspace's background server.")
@click.pass_context
def serve(
    ctx, workspace_path, host, port, foreground, user, password, token, certfile, keyfile, stop
):
    """Serve the workspace tree read-only over WebDAV.

    Windows Explorer (Map network drive), macOS Finder (Connect to Server), Linux file
    managers, rclone and fsspec's webdav4 browse it with nothing to install. Listens on
    127.0.0.1 only unless --host; beyond loopback every request needs a user and password
    (generated and shown once unless given), sent in clear over plain HTTP unless
    --certfile/--keyfile. Runs in the background unless --foreground; stop it with
    `n4afs serve --stop`.
    """
    ws = workspace(workspace_path or ctx.obj["workspace"])
    if stop:
        stopped = ws.stop_serving()
        echo(f"stopped the WebDAV server of {ws.path} at {stopped.url} (PID {stopped.pid})")
        return

    def announce(served) -> None:
        echo(f"serving {served.workspace} read-only at {served.url}")
        if served.user is not None:
            shown = served.password if served.generated else "(the one you gave)"
            echo(f"log in as user {served.user}, password {shown}")
            if served.generated:
                echo("  (shown once: note it now)")
        if served.in_clear:
            echo(
                "warning: plain HTTP: the password and every file cross the network "
                "unencrypted; give --certfile and --keyfile to serve HTTPS"
            )
        if served.log_path is not None:
            echo(f"log: {served.log_path}   stop it: n4afs serve --stop {served.workspace}")
        else:
            echo("Ctrl-C stops it")

    ws.serve(
        host=host,
        port=port,
        foreground=foreground,
        user=user,
        password=password,
        token=token,
        certfile=certfile,
        keyfile=keyfile,
        announce=announce,
    )


COMMANDS = (ls_cmd, tree_cmd, cat_cmd, open_cmd, mount, umount, serve)
