"""The bubblewrap sandbox of a terminal machine: the bwrap command line, the
shell's environment (an allow-list), and the interactive shell for xterm."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

_SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin", "/etc")
FONT_CACHE = "/var/cache/fontconfig"
_SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Variables a shell may inherit from the agent (proxies, CA bundles, package
# indexes). Everything else — API keys, the agent's token — stays outside.
PASSTHROUGH_ENV = (
    "LANG", "LC_ALL", "TZ",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "PIP_CERT",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT",
    "PIP_DISABLE_PIP_VERSION_CHECK", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL",
)


def bwrap_available() -> bool:
    return shutil.which("bwrap") is not None


def _python_prefixes() -> list[str]:
    """Where this Python lives, so that ``python3 -m venv`` works inside."""
    prefixes = [os.path.realpath(sys.base_prefix)]
    exe_prefix = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
    prefixes.append(exe_prefix)
    out: list[str] = []
    for p in prefixes:
        if p and p != "/" and os.path.isdir(p) and p not in out:
            out.append(p)
    return out


X11_SOCKETS = "/tmp/.X11-unix"


def bwrap_argv(workspace: Path, *, network: bool, uid: int | None = None,
               binds: tuple[str, ...] = (), resolv: str | None = None,
               display: dict[str, str] | None = None) -> list[str]:
    """The bubblewrap command line that wraps a session's shell.

    With ``uid`` (the agent is root and the machine has a user of its own) bwrap
    runs privileged, without a user namespace, in the namespace of the
    machine's network the caller entered, and the command it runs must become
    ``uid`` itself (:func:`.users.setpriv_argv`, which also drops every
    capability); without, bwrap drops the capabilities. ``binds`` are host
    paths shown at the same place inside (the X socket, the X cookie);
    ``resolv`` a file shown as ``/etc/resolv.conf``. With the ``display`` of the
    machine's desktop (DISPLAY, XAUTHORITY), its cookie and X socket are shown
    read-only, so the shell can start apps on the desktop (and only on this
    one: the cookie is the machine's own).
    """
    ws = str(workspace)
    if uid is None:
        argv = ["bwrap", "--unshare-all"]
        if network:
            argv.append("--share-net")
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    else:
        argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if not network:
            argv.append("--unshare-net")
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        else:
            argv += ["--ro-bind-try", d, d]
    etc_resolv = "/etc/resolv.conf"
    if os.path.islink(etc_resolv):  # e.g. into /run/systemd/resolve: keep DNS working
        target = os.path.realpath(etc_resolv)
        if not any(target.startswith(d + "/") for d in _SYSTEM_DIRS):
            argv += ["--ro-bind-try", target, target]
        etc_resolv = target
    if resolv is not None:
        argv += ["--ro-bind", resolv, etc_resolv]

    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    made: set[str] = set()

    def parents(path: str) -> list[str]:
        # privileged bwrap makes a bind's missing parents 0700: the machine's
        # user could not reach its own workspace through them
        if uid is None:
            return []
        out = []
        for parent in reversed(Path(path).parents):
            p = str(parent)
            if p == "/" or p in made or p == "/tmp" or any(
                    p == d or p.startswith(d + "/") for d in _SYSTEM_DIRS):
                continue
            made.add(p)
            out += ["--perms", "0755", "--dir", p]
        return out

    # the system's font cache: without it every program with text (xterm,
    # Chromium) rescans the fonts at start
    if os.path.isdir(FONT_CACHE):
        argv += [*parents(FONT_CACHE), "--ro-bind", FONT_CACHE, FONT_CACHE]
    for prefix in _python_prefixes():
        if not any(prefix == d or prefix.startswith(d + "/") for d in _SYSTEM_DIRS):
            argv += [*parents(prefix), "--ro-bind", prefix, prefix]
    argv += [*parents(ws), "--bind", ws, ws, "--setenv", "HOME", ws, "--chdir", ws]
    for path in binds:
        argv += [*parents(path), "--bind", path, path]
    if display:
        # this display's socket only (another machine's needs its cookie too)
        xauth = display["XAUTHORITY"]
        socket = f"{X11_SOCKETS}/X{display['DISPLAY'].lstrip(':').split('.')[0]}"
        argv += ["--ro-bind-try", socket, socket, *parents(xauth), "--ro-bind", xauth, xauth]
    return argv


def interactive_shell_argv(workspace: Path, *, sandbox: bool, network: bool,
                           display: dict[str, str] | None = None) -> list[str]:
    """A login-less bash for a terminal emulator (xterm) on the desktop, in the
    same sandbox as the sessions but keeping its controlling terminal (the
    terminal is the emulator's own pty, so --new-session is not needed)."""
    argv = ["bash", "--noprofile", "--norc", "-i"]
    if not sandbox:
        return argv
    return [a for a in bwrap_argv(workspace, network=network, display=display)
            if a != "--new-session"] + argv


def shell_env(workspace: Path, *, sandboxed: bool,
              display: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.update(display or {})
    if sandboxed:
        python_bins = [
            f"{p}/bin" for p in _python_prefixes() if not p.startswith("/usr")
        ]
        path = ":".join([*python_bins, _SANDBOX_PATH])
    else:
        path = os.environ.get("PATH", _SANDBOX_PATH)
    env.update(
        HOME=str(workspace),
        PWD=str(workspace),
        PATH=path,
        SHELL="/bin/bash",
        TERM="dumb",
        PAGER="cat",
        GIT_PAGER="cat",
    )
    env.setdefault("LANG", "C.UTF-8")
    if sandboxed:
        env["TMPDIR"] = "/tmp"
    return env
