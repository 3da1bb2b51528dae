"""How the grid can show a file, from its name: the browser picks the viewer from this."""

from __future__ import annotations

KINDS = {
    "image": {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "avif"},
    "pdf": {"pdf"},
    "html": {"html", "htm"},
    "json": {"json", "ipynb"},
    "csv": {"csv", "tsv"},
    "text": {"txt", "log", "md", "out", "err", "yaml", "yml", "toml", "ini", "cfg", "py", "sh", "tex", "dat"},
}
_BY_EXT = {ext: kind for kind, exts in KINDS.items() for ext in exts}


def kind_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _BY_EXT.get(ext, "other")
