"""``python -m llmops.tracking URI EXPERIMENT``: the uploader helper (``llmops.tracking.uploader``)."""

import sys

from llmops.tracking.uploader import main

main(sys.argv[1:])
