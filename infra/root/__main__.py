"""``gpufleet`` / ``python -m gpufleet``: the command line, which needs the ``cli`` extra."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from gpufleet.infra.cli import main as cli_main
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] == "gpufleet":
            raise
        sys.exit(f"gpufleet: the command line needs the cli extra ({error.name} is not installed): "
                 "pip install 'gpufleet[cli]'")
    cli_main()


if __name__ == "__main__":
    main()
