"""`python -m perception_ws.cli ...` (as torchrun, the tests and the launch graph's replay node start it)."""

from perception_ws.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
