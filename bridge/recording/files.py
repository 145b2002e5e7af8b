"""Recording files on disk: where a meeting's recording goes, deleting one, sweeping leftovers.

The recordings folder is shared with LiveKit's egress server and the transcription workers, and
what lies in it is what civil servants said in meetings: nothing is kept longer than its
transcript needs. Deleting is careful, because the folder is shared: only what lies in the
folder is deleted, a symbolic link is never followed out of it (a link named for deletion is
removed as a link, its target untouched; the sweep leaves links alone and looks only at the
folder's own files), and the sweep only touches files named as the bridge names its
recordings, so a misconfigured `recordings_dir` (a data folder, a home) loses nothing else.
Synchronous: callers run these in a thread.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import PurePosixPath

log = logging.getLogger(__name__)

# `visio-abc-defg-hij-<24 hex>.ogg` (bridge/ids.py, `planned_path`), and whatever the egress
# server writes next to it under the same stem (its `.json` manifest, say); and each
# participant's own track, `visio-abc-defg-hij-<24 hex>-t<8 hex>.ogg` (bridge/recording/tracks.py).
_OURS = re.compile(
    r"^visio-[a-z]{3}-[a-z]{4}-[a-z]{3}-[0-9a-f]{24}"
    r"(?:\.[A-Za-z0-9.]{1,16}|-t[0-9a-f]{8}\.ogg)$"
)


def planned_path(recordings_dir: str, livekit_room: str, meeting_id: str) -> str:
    """Where the egress server is asked to write a meeting's audio."""
    return str(PurePosixPath(recordings_dir) / f"{livekit_room}-{meeting_id}.ogg")


def is_recording_name(name: str) -> bool:
    return _OURS.fullmatch(name) is not None


def _in_folder(recordings_dir: str, path: str) -> str | None:
    """`path` with its folder resolved (`..`, links), if that folder is in the recordings
    folder; the file's own name is not resolved, so a link there stays a link."""
    if not path or "\x00" in path:
        return None
    name = os.path.basename(path)
    if name in ("", ".", ".."):
        return None
    folder = os.path.realpath(recordings_dir)
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    if parent != folder and os.path.commonpath([folder, parent]) != folder:
        return None
    return os.path.join(parent, name)


def discard(recordings_dir: str, path: str) -> bool:
    """Delete the recording at `path` if it lies in the recordings folder; True if deleted.

    Anything else (another folder, through a link to a folder outside, a folder) is left
    alone."""
    target = _in_folder(recordings_dir, path)
    if target is None:
        if path:
            log.warning("Not deleting %r: it is not in the recordings folder", path)
        return False
    try:
        if stat.S_ISDIR(os.lstat(target).st_mode):
            return False
        os.unlink(target)  # a symbolic link goes, not what it points to
    except FileNotFoundError:
        return False
    except OSError as err:
        log.warning("Could not delete the recording %s: %s", target, err)
        return False
    return True


def canonical(recordings_dir: str, path: str) -> str | None:
    """The form `sweep` compares paths in (None for a path outside the folder)."""
    return _in_folder(recordings_dir, path)


def sweep(recordings_dir: str, older_than_s: float, keep: Iterable[str]) -> list[str]:
    """Delete the recordings last written before `older_than_s` (Unix time) that are not in
    `keep` (paths, in any spelling); returns the paths deleted. Only regular files directly in
    the folder and named as the bridge names recordings are considered."""
    kept = {form for path in keep if (form := canonical(recordings_dir, path)) is not None}
    folder = os.path.realpath(recordings_dir)
    deleted: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return deleted  # not mounted on this host: the workers' hosts sweep it
    except OSError as err:
        log.warning("Cannot sweep the recordings folder %s: %s", folder, err)
        return deleted
    for entry in entries:
        path = os.path.join(folder, entry.name)
        if not is_recording_name(entry.name) or path in kept:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue  # links and folders are never followed, nor deleted
            if entry.stat(follow_symlinks=False).st_mtime >= older_than_s:
                continue
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as err:
            log.warning("Could not delete the recording %s: %s", path, err)
            continue
        deleted.append(path)
    return deleted
