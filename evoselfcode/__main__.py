"""`python -m evoselfcode`: runs the CLI (`cli.py`), with one line instead of a traceback on Ctrl-C."""

import sys

try:
    from evoselfcode.cli import main

    status = main()
except KeyboardInterrupt:  # Ctrl-C reaches every job, wherever it is (even importing): no traceback
    sys.stderr.write("evoselfcode: interrupted\n")  # one write: print's two interleave with other jobs
    status = 130
sys.exit(status)
