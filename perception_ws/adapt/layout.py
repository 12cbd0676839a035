"""The files of a `perception adapt` output folder (one place, for the stages and the report)."""

SETTINGS_JSON = "adapt.json"
PROFILE_DIR, LIR_DIR, TRAIN_DIR, REPORT_DIR = "profile", "lir", "train", "report"
WEIGHTS = "weights.pt"
LIR_FILE = "lir_hybrid.pt"
