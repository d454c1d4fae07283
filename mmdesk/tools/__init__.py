"""Small helper programs used by the scripts (sample clip, result summary)."""
