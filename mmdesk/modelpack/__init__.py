"""The model pack builder: pinned recipes, checked sources, and an atomic build into the pack directory.

``mmdesk models build | list | verify`` (mmdesk/commands/models.py) is the user-facing side. Nothing here
is imported by the runtime; it reads packs only through mmdesk.inference.manifest.
"""

from mmdesk.modelpack.build import BuildResult, build_pack
from mmdesk.modelpack.recipes import DEFAULT_RECIPES, ROLES, Recipe
from mmdesk.modelpack.sources import FetchContext, default_cache_dir

__all__ = ["DEFAULT_RECIPES", "ROLES", "BuildResult", "FetchContext", "Recipe", "build_pack", "default_cache_dir"]
