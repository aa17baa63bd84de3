"""Files in the torch hub and Hugging Face caches, checked against the checksum in their name."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import torch

from bench.core.errors import BenchError
from bench.load import checkpoint
from bench.load.weights_file import read_state_dict

_HUB_HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext
_SHA256 = re.compile(r"^[a-f0-9]{64}$")
log = logging.getLogger(__name__)


def hub_cache_path(url: str) -> Path:
    """Where torch.hub.load_state_dict_from_url keeps `url` ($TORCH_HOME/hub/checkpoints/<name>)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url.split("?")[0]).name


def verify_hub_file(path: Path) -> str:
    """sha256 of a torch hub file; raises if it does not start with the prefix in the file's name.

    torch.hub checks the hash only while downloading, so a damaged or replaced cache file would load
    silently.
    """
    digest = checkpoint.sha256(path)
    m = _HUB_HASH.search(path.name)
    if m and not digest.startswith(m.group(1)):
        raise BenchError(
            f"checksum mismatch: {path} has sha256 {digest[:12]}…, its name says {m.group(1)}; "
            "delete it so it is downloaded again"
        )
    if not m:
        log.warning(
            "%s: its name carries no sha256 prefix to check it against; loaded unchecked (sha256 "
            "%s…)",
            path,
            digest[:12],
        )
    return digest


def verify_hf_file(path: Path) -> str:
    """sha256 of a Hugging Face cache file; raises unless it is the blob name (as LFS names it)."""
    digest = checkpoint.sha256(path)
    blob = path.resolve().name
    if _SHA256.match(blob) and digest != blob:
        raise BenchError(
            f"checksum mismatch: {path} has sha256 {digest[:12]}…, the hub recorded {blob[:12]}…; "
            "delete it so it is downloaded again"
        )
    if not _SHA256.match(blob):
        log.warning(
            "%s is a copy, not the hub cache's link to its blob, so there is no recorded sha256 to "
            "check it against; loaded unchecked (sha256 %s…)",
            path,
            digest[:12],
        )
    return digest


def load_file(
    net: torch.nn.Module, path: Path, rename: Callable[[dict], dict] = lambda sd: sd
) -> tuple[str, dict]:
    """Load a local weights file into `net` (its keys passed through `rename`); returns the label
    and meta of a `@FILE` spec."""
    checkpoint.load_weights(net, rename(read_state_dict(path)), f"weights file {path}")
    return "file:" + checkpoint.sha256(path)[:12], {"file": str(path)}
