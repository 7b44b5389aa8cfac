import sys

from evoselfcode.cli import main

sys.exit(main())
