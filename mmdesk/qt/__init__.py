"""The desktop app (PySide6 + pyqtgraph). The only package of mmdesk that imports Qt: it shows
what ``mmdesk.session`` computes and never captures or infers on the GUI thread."""
