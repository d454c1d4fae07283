"""Qt-free core: data types crossing threads, the session clock and bounded buffers."""
