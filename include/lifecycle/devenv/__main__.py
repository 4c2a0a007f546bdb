"""``python -m lifecycle.devenv …``: an alias of ``python -m lifecycle dev …`` (the Makefile,
the compose file's docs and the tests use it)."""

import sys


def main(argv: list[str] | None = None) -> int:
    from lifecycle.cli import main as lifecycle_main

    return lifecycle_main(["dev", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
