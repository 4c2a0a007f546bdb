"""``python -m lifecycle.demo seed|run``: an alias of ``python -m lifecycle demo seed|run``
(the Makefile and the docs use it)."""

import sys


def main(argv: list[str] | None = None) -> int:
    from lifecycle.cli import main as lifecycle_main

    return lifecycle_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
