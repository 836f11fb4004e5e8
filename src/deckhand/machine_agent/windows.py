"""Top-level windows of a desktop, through the window manager's EWMH hints
(openbox implements them): list, activate, close, minimize, maximize,
restore, move/resize and a tiled arrangement."""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from typing import Any

from Xlib import X, Xatom
from Xlib.display import Display
from Xlib.error import XError
from Xlib.protocol import event

from deckhand.machine_agent.errors import AgentError

SOURCE_PAGER = 2


class WindowError(AgentError):
    pass


@dataclass(frozen=True)
class WindowInfo:
    id: int
    title: str
    x: int
    y: int
    width: int
    height: int
    active: bool
    minimized: bool
    maximized: bool
    pid: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Windows:
    def __init__(self, display_name: str) -> None:
        self.display = Display(display_name)
        self.root = self.display.screen().root
        self._lock = threading.Lock()
        a = self.display.intern_atom
        self.atoms = {name: a(name) for name in (
            "_NET_CLIENT_LIST", "_NET_ACTIVE_WINDOW", "_NET_WM_NAME", "UTF8_STRING",
            "_NET_WM_STATE", "_NET_WM_STATE_HIDDEN", "_NET_WM_STATE_MAXIMIZED_VERT",
            "_NET_WM_STATE_MAXIMIZED_HORZ", "_NET_CLOSE_WINDOW", "_NET_MOVERESIZE_WINDOW",
            "_NET_WM_PID", "WM_CHANGE_STATE", "_NET_WM_WINDOW_TYPE",
            "_NET_WM_WINDOW_TYPE_NORMAL",
        )}

    def close(self) -> None:
        self.display.close()

    # ------------------------------------------------------------------ reading

    def list(self) -> list[WindowInfo]:
        with self._lock:
            ids = self._prop(self.root, "_NET_CLIENT_LIST") or []
            active = (self._prop(self.root, "_NET_ACTIVE_WINDOW") or [0])[0]
            out = []
            for wid in ids:
                try:
                    out.append(self._info(int(wid), int(active)))
                except XError:
                    continue  # closed meanwhile
        return out

    def find(self, ref: Any) -> WindowInfo:
        """A window by id (int or "0x…" string) or by a case-insensitive
        substring of its title."""
        windows = self.list()
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
            wanted = int(ref)
            match = [w for w in windows if w.id == wanted]
        elif isinstance(ref, str) and ref.lower().startswith("0x"):
            wanted = int(ref, 16)
            match = [w for w in windows if w.id == wanted]
        elif isinstance(ref, str) and ref:
            match = [w for w in windows if ref.lower() in w.title.lower()]
        else:
            raise WindowError("name the window with window_id or title")
        if not match:
            titles = ", ".join(f"{w.id} {w.title!r}" for w in windows) or "none"
            raise WindowError(f"no window {ref!r}; open windows: {titles}")
        return match[0]

    # ------------------------------------------------------------------ acting

    def activate(self, wid: int) -> None:
        self._send(wid, "_NET_ACTIVE_WINDOW", [SOURCE_PAGER, X.CurrentTime, 0, 0, 0])

    def close_window(self, wid: int) -> None:
        self._send(wid, "_NET_CLOSE_WINDOW", [X.CurrentTime, SOURCE_PAGER, 0, 0, 0])

    def minimize(self, wid: int) -> None:
        self._send(wid, "WM_CHANGE_STATE", [3, 0, 0, 0, 0])  # IconicState

    def maximize(self, wid: int) -> None:
        self._state(wid, 1)

    def restore(self, wid: int) -> None:
        self._state(wid, 0)
        self.activate(wid)  # also de-iconifies

    def move(self, wid: int, x: int | None, y: int | None, width: int | None,
             height: int | None) -> None:
        flags = SOURCE_PAGER << 12
        values = []
        for bit, value in ((8, x), (9, y), (10, width), (11, height)):
            if value is not None:
                flags |= 1 << bit
            values.append(int(value or 0))
        self._state(wid, 0)  # a maximized window ignores moves
        self._send(wid, "_NET_MOVERESIZE_WINDOW", [flags, *values])

    def arrange(self, screen_w: int, screen_h: int) -> list[WindowInfo]:
        """Tile the visible windows in a grid covering the screen."""
        windows = [w for w in self.list() if not w.minimized]
        if not windows:
            return []
        cols = math.ceil(math.sqrt(len(windows)))
        rows = math.ceil(len(windows) / cols)
        cw, ch = screen_w // cols, screen_h // rows
        for i, w in enumerate(windows):
            self.move(w.id, (i % cols) * cw, (i // cols) * ch, cw, ch)
        return windows

    # ------------------------------------------------------------------ internals

    def _window(self, wid: int) -> Any:
        return self.display.create_resource_object("window", wid)

    def _prop(self, win: Any, name: str, kind: int = X.AnyPropertyType) -> Any:
        prop = win.get_full_property(self.atoms[name], kind)
        return None if prop is None else prop.value

    def _info(self, wid: int, active: int) -> WindowInfo:
        win = self._window(wid)
        title = self._prop(win, "_NET_WM_NAME", self.atoms["UTF8_STRING"])
        if isinstance(title, bytes):
            title = title.decode(errors="replace")
        if not title:
            raw = win.get_wm_name()
            title = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
        geo = win.get_geometry()
        pos = win.translate_coords(self.root, 0, 0)
        states = set(self._prop(win, "_NET_WM_STATE", Xatom.ATOM) or [])
        pid = self._prop(win, "_NET_WM_PID", Xatom.CARDINAL)
        return WindowInfo(
            id=wid, title=str(title), x=-pos.x, y=-pos.y, width=geo.width, height=geo.height,
            active=wid == active,
            minimized=self.atoms["_NET_WM_STATE_HIDDEN"] in states,
            maximized=self.atoms["_NET_WM_STATE_MAXIMIZED_VERT"] in states
            and self.atoms["_NET_WM_STATE_MAXIMIZED_HORZ"] in states,
            pid=int(pid[0]) if pid else None,
        )

    def _state(self, wid: int, action: int) -> None:
        self._send(wid, "_NET_WM_STATE", [
            action, self.atoms["_NET_WM_STATE_MAXIMIZED_VERT"],
            self.atoms["_NET_WM_STATE_MAXIMIZED_HORZ"], SOURCE_PAGER, 0,
        ])

    def _send(self, wid: int, message: str, data: list[int]) -> None:
        with self._lock:
            ev = event.ClientMessage(window=self._window(wid), client_type=self.atoms[message],
                                     data=(32, data))
            self.root.send_event(ev, event_mask=X.SubstructureRedirectMask
                                 | X.SubstructureNotifyMask)
            self.display.sync()
