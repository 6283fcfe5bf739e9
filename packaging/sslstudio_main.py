"""Entry point of the PyInstaller bundle: the same `sslstudio` command as `pip install .` gives."""

import multiprocessing
import sys

if __name__ == "__main__":
    # The decoded-cache builder uses a forkserver/spawn process pool; in a frozen
    # app the children re-run this executable and must stop here.
    multiprocessing.freeze_support()
    from sslstudio.cli import main

    sys.exit(main())
