# PyInstaller runtime hook: pyqtgraph imports PySide6.QtOpenGL at module level (pyqtgraph/Qt/OpenGLHelpers.py)
# but uses it only to draw with OpenGL (pyqtgraph's useOpenGL option, which mmdesk leaves off). The binding
# (8.7 MB) is not bundled (bundle_contents.UNUSED_QT_MODULES); this stand-in lets the import succeed and
# makes any use of it fail with an ImportError that says why.
import sys
import types


class _NotBundled(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # module protocol lookups (__path__, __file__, ...): plain absence
            raise AttributeError(name)
        raise ImportError(f"PySide6.QtOpenGL.{name}: QtOpenGL is not included in the mmdesk bundle "
                          "(pyqtgraph's OpenGL drawing is off)")


sys.modules.setdefault("PySide6.QtOpenGL", _NotBundled("PySide6.QtOpenGL"))
