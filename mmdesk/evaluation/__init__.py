"""`mmdesk eval`: reproducible evaluation of the pack's models on datasets in their published layouts."""
