"""Where the app finds its sources: the one ASL file and the function assets local mode also uses."""

from __future__ import annotations

from pathlib import Path

import cronpilot

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
# The same file `cronpilot.local.cloud.render_asl` reads: one definition, run two ways.
ASL_PATH = Path(cronpilot.__file__).resolve().parent / "asl" / "run_job.asl.json"
DEFAULT_LAYERS_DIR = ROOT / "build" / "layers"
