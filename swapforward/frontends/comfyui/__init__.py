"""The ComfyUI node pack: SaFa and MultiDiffusion as ComfyUI nodes over ComfyUI's own models and samplers.

`nodes.py` holds the nodes (imported inside ComfyUI only), `sampling.py` the adapter of ComfyUI's model call and
sampler step to the core's loop (importable anywhere). `install(comfyui)` puts the pack into a ComfyUI's
custom_nodes folder as a two-line module that imports the installed swapforward's nodes.
"""

from __future__ import annotations

from pathlib import Path

#: The folder name under custom_nodes (not "swapforward": ComfyUI imports a custom node folder under its own name,
#: which would hide the library).
FOLDER = "swapforward_nodes"
SHIM = '''"""swapforward's ComfyUI nodes (https://pypi.org/project/swapforward): installed by `swapforward comfyui`."""
from swapforward.frontends.comfyui.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
'''


def install(comfyui: str | Path) -> Path:
    """Write the node pack into `comfyui`/custom_nodes; returns its folder."""
    folder = Path(comfyui) / "custom_nodes" / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(SHIM)
    return folder
