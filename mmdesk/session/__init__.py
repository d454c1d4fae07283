"""What the desktop app runs, without Qt: clip and live analysis on worker threads, the session
data model, saving, reopening and exporting. ``mmdesk/qt`` only subscribes to these."""
